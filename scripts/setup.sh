#!/usr/bin/env bash
# Installs the system packages Bulwark needs on Debian/Ubuntu (only those missing):
#   libopenblas-dev, liblapacke-dev  BLAS and LAPACK (CBLAS/LAPACKE headers) for the tensor core
#   zlib1g-dev                       gzip decompression of IDX files
#   pkg-config                       lets SwiftPM find OpenBLAS's include path
#   dataset-fashion-mnist            the full Fashion-MNIST data in /usr/share/datasets/fashion-mnist
# With --tests, also what the tests need:
#   chromium, fonts-dejavu-core      headless rendering of the HTML report (the screenshot test)
#   python3-pip, and from PyPI:      the interoperability tests' peers (skipped where missing):
#     model-signing 1.1.1, pyOpenSSL   OpenSSF Model Signing's reference tool (it imports OpenSSL
#                                      without declaring it)
#     jsonschema                       CycloneDX 1.6 schema validation of bulwark sbom
# The Swift toolchain itself is expected on PATH (swift.org, or /opt/swift/usr/bin).
set -euo pipefail

packages=(libopenblas-dev liblapacke-dev zlib1g-dev pkg-config dataset-fashion-mnist)
for argument in "$@"; do
    case "$argument" in
        --tests) packages+=(chromium fonts-dejavu-core) ;;
        *) echo "setup: unknown option '$argument' (known: --tests)" >&2; exit 64 ;;
    esac
done
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if ((${#missing[@]})); then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        echo "setup: swift is not on PATH; add /opt/swift/usr/bin to PATH" >&2
    else
        echo "setup: no Swift toolchain found; install Swift 6.1 or later from https://swift.org/install" >&2
    fi
    exit 1
fi
echo "setup: system packages ready" >&2

if [[ " $* " == *" --tests "* ]]; then
    python=$(command -v python3 || true)
    if [ -z "$python" ]; then
        echo "setup: no python3; the OMS and CycloneDX interoperability tests will be skipped" >&2
    elif ! "$python" -c "import model_signing, OpenSSL, jsonschema, referencing" 2>/dev/null; then
        echo "setup: installing model-signing 1.1.1, pyOpenSSL and jsonschema from PyPI for the interoperability tests" >&2
        if ! "$python" -m pip install --quiet --disable-pip-version-check "model-signing==1.1.1" pyOpenSSL "jsonschema>=4.18" >&2; then
            echo "setup: pip could not install them; the OMS and CycloneDX interoperability tests will be skipped" >&2
        fi
    fi
fi

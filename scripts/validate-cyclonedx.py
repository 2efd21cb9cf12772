#!/usr/bin/env python3
"""Validate a CycloneDX 1.6 JSON BOM against the official schema, offline.

    python3 scripts/validate-cyclonedx.py BOM.json [--schema-dir DIR] [--schema-only] [-v]
    bulwark sbom MODEL | python3 scripts/validate-cyclonedx.py -

BOM.json is a file, or `-` for standard input. The schemas are the ones committed in
Tests/SecurityTests/Fixtures/cyclonedx (bom-1.6.schema.json and the two it references,
spdx.schema.json and jsf-0.82.schema.json; see PROVENANCE.md there); --schema-dir points
elsewhere. Nothing is fetched from the network: every *.schema.json in the directory is
registered with `referencing` under its own `$id` (http://cyclonedx.org/schema/...), which is
what bom-1.6's relative `$ref`s ("spdx.schema.json", "jsf-0.82.schema.json#/...") resolve
against, and any other reference is an error rather than a download.

Checks, in order:
  1. the file is JSON (no duplicate keys, no NaN or Infinity);
  2. the CycloneDX 1.6 schema (JSON Schema draft-07, as the schema declares), with format
     checking for the formats jsonschema can check here: date-time (needs rfc3339-validator),
     idn-email; iri-reference is checked only if the optional `rfc3987-syntax` package is
     installed; "uri" (jsf-0.82's signature algorithm) falls back to a scheme check of this
     script's own when neither rfc3987 nor rfc3986-validator is installed (-v says which formats
     were checked);
  3. unless --schema-only, what the schema cannot express: specVersion is "1.6", every
     bom-ref is unique in the BOM, and every ref in `dependencies` and in
     modelCard.modelParameters.datasets names a bom-ref of the BOM.

Exit status: 0 and "valid" on standard output if the BOM passes; 1 if it does not (or is not
JSON), with one line per error on standard error: its JSON path and message, and for a failed
oneOf/anyOf the closest alternative's error beneath it; 2 for a usage error, an unreadable
file, or a missing or broken schema directory.

Needs jsonschema >= 4.18 (for `referencing`).
"""
import argparse
import json
import pathlib
import re
import sys

try:
    from jsonschema import FormatChecker, exceptions, validators
    from referencing import Registry, Resource
    from referencing.exceptions import NoSuchResource, Unresolvable
    from referencing.jsonschema import DRAFT7
except ImportError as error:  # pragma: no cover - depends on the machine
    print(f"validate-cyclonedx: needs jsonschema >= 4.18 and referencing ({error})", file=sys.stderr)
    sys.exit(2)

SPEC_VERSION = "1.6"
ROOT_SCHEMA = f"bom-{SPEC_VERSION}.schema.json"
DEFAULT_SCHEMA_DIR = pathlib.Path(__file__).resolve().parent.parent / "Tests/SecurityTests/Fixtures/cyclonedx"
MESSAGE_LIMIT = 400
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$")


class UsageError(Exception):
    """Exit status 2."""


def load_json(text, origin):
    """Parses JSON strictly: a duplicate key or NaN/Infinity is an error (ValueError)."""

    def pairs(items):
        result = {}
        for key, value in items:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    def constant(name):
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{origin}: not JSON: {error}") from None


def load_registry(schema_dir):
    """Every *.schema.json in schema_dir, registered under its $id; no retrieval of anything else."""
    if not schema_dir.is_dir():
        raise UsageError(f"schema directory {schema_dir} does not exist")
    resources = []
    for path in sorted(schema_dir.glob("*.schema.json")):
        try:
            contents = load_json(path.read_text(encoding="utf-8"), path)
        except (OSError, ValueError) as error:
            raise UsageError(f"schema {path}: {error}") from None
        uri = contents.get("$id")
        if not uri:
            raise UsageError(f"schema {path} has no $id")
        # All CycloneDX schemas declare draft-07; fall back to it if one does not.
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT7)))
    if not any(uri.endswith("/" + ROOT_SCHEMA) for uri, _ in resources):
        raise UsageError(f"{schema_dir} has no {ROOT_SCHEMA}")

    def retrieve(uri):
        raise NoSuchResource(ref=uri)  # offline: never fetch, whatever the $ref says

    registry = Registry(retrieve=retrieve).with_resources(resources)
    root_uri = next(uri for uri, _ in resources if uri.endswith("/" + ROOT_SCHEMA))

    # Resolve every reference to another file now, so a missing schema is a usage error even
    # when the BOM at hand would never reach it (spdx.schema.json is only consulted for licenses).
    def external_refs(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                yield ref
            for value in node.values():
                yield from external_refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from external_refs(value)

    resolver = registry.resolver(base_uri=root_uri)
    for uri, resource in resources:
        for ref in sorted(set(external_refs(resource.contents))):
            try:
                registry.resolver(base_uri=uri).lookup(ref)
            except Unresolvable:
                raise UsageError(f"{schema_dir}: {uri} refers to {ref}, which is not there") from None
    return registry, resolver.lookup(root_uri).contents


def short(text):
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def closest_alternative(error):
    """For a failed oneOf/anyOf: the error of the alternative that got furthest into the instance
    (the deepest error among all nested alternatives; a bare type mismatch loses a tie)."""
    candidates, stack = [], list(error.context)
    while stack:
        candidate = stack.pop()
        if candidate.context:
            stack.extend(candidate.context)
        else:
            candidates.append(candidate)
    return max(candidates, key=lambda e: (len(e.absolute_path), e.validator != "type"))


def format_checker(cls):
    """The draft's format checker, plus a minimal "uri" check when jsonschema has none.

    jsonschema checks "uri" only with rfc3987 or rfc3986-validator installed. Without one,
    jsf-0.82's signature algorithm, oneOf [enum of JWA names, {format: uri}], accepts "ES256"
    under both alternatives, so every signed BOM would fail its oneOf. RFC 3986 requires a
    scheme, which "ES256" lacks; that is all this fallback checks.
    """
    checker = FormatChecker()
    checker.checkers = dict(cls.FORMAT_CHECKER.checkers)
    if "uri" not in checker.checkers:
        checker.checks("uri")(lambda value: not isinstance(value, str) or URI_SCHEME.match(value) is not None)
    return checker


def schema_errors(bom, registry, schema, verbose):
    cls = validators.validator_for(schema)  # Draft7Validator for "$schema": draft-07
    cls.check_schema(schema)
    validator = cls(schema, registry=registry, format_checker=format_checker(cls))
    lines = []
    for error in sorted(validator.iter_errors(bom), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        where = f" (schema: {'/'.join(map(str, error.absolute_schema_path))})" if verbose else ""
        lines.append(f"{error.json_path}: {short(error.message)}{where}")
        if error.context:  # oneOf / anyOf: say why the closest alternative failed
            best = closest_alternative(error)
            lines.append(f"    closest alternative: {best.json_path}: {short(best.message)}")
    return lines, cls


def integrity_errors(bom):
    """What the schema cannot say: the spec version, unique bom-refs, refs that resolve."""
    lines = []
    if not isinstance(bom, dict):
        return lines
    if bom.get("specVersion") != SPEC_VERSION:
        lines.append(f"$.specVersion: {bom.get('specVersion')!r} is not {SPEC_VERSION!r}, the schema this script checks")

    seen = {}

    def walk(node, path):
        if isinstance(node, dict):
            ref = node.get("bom-ref")
            if isinstance(ref, str):
                if ref in seen:
                    lines.append(f"{path}['bom-ref']: {ref!r} is not unique (also at {seen[ref]}['bom-ref'])")
                else:
                    seen[ref] = path
            for key, value in node.items():
                walk(value, f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    walk(bom, "$")

    def check(ref, path):
        if isinstance(ref, str) and not ref.startswith("urn:cdx:") and ref not in seen:
            lines.append(f"{path}: {ref!r} names no bom-ref in this BOM")

    for index, dependency in enumerate(bom.get("dependencies") or []):
        if not isinstance(dependency, dict):
            continue
        check(dependency.get("ref"), f"$.dependencies[{index}].ref")
        for key in ("dependsOn", "provides"):
            for position, ref in enumerate(dependency.get(key) or []):
                check(ref, f"$.dependencies[{index}].{key}[{position}]")

    def model_cards(node, path):
        if isinstance(node, dict):
            card = node.get("modelCard")
            if isinstance(card, dict):
                datasets = (card.get("modelParameters") or {}).get("datasets") or []
                for position, entry in enumerate(datasets if isinstance(datasets, list) else []):
                    if isinstance(entry, dict) and "ref" in entry:
                        check(entry["ref"], f"{path}.modelCard.modelParameters.datasets[{position}].ref")
            for key, value in node.items():
                model_cards(value, f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                model_cards(value, f"{path}[{index}]")

    model_cards(bom, "$")
    return lines


def main(argv):
    parser = argparse.ArgumentParser(
        prog="validate-cyclonedx.py",
        description=f"Validate a CycloneDX {SPEC_VERSION} JSON BOM against the committed schema, offline.",
    )
    parser.add_argument("bom", metavar="BOM.json", help="the BOM to check, or - for standard input")
    parser.add_argument("--schema-dir", type=pathlib.Path, default=DEFAULT_SCHEMA_DIR,
                        help=f"directory of the CycloneDX schemas (default: {DEFAULT_SCHEMA_DIR})")
    parser.add_argument("--schema-only", action="store_true",
                        help="only the JSON schema; skip the specVersion, bom-ref uniqueness and ref checks")
    parser.add_argument("-v", "--verbose", action="store_true", help="say which schemas and formats were used, and each error's schema path")
    arguments = parser.parse_args(argv)  # exits 2 on a usage error

    try:
        registry, schema = load_registry(arguments.schema_dir)
        if arguments.bom == "-":
            text, origin = sys.stdin.read(), "<stdin>"
        else:
            try:
                text = pathlib.Path(arguments.bom).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise UsageError(f"cannot read {arguments.bom}: {error}") from None
            origin = arguments.bom
    except UsageError as error:
        print(f"validate-cyclonedx: {error}", file=sys.stderr)
        return 2

    try:
        bom = load_json(text, origin)
    except ValueError as error:
        print(f"$: {error}", file=sys.stderr)
        return 1

    try:
        lines, cls = schema_errors(bom, registry, schema, arguments.verbose)
    except (exceptions.SchemaError, Unresolvable) as error:
        print(f"validate-cyclonedx: the schema in {arguments.schema_dir} is unusable: {short(str(error))}", file=sys.stderr)
        return 2
    if not arguments.schema_only:
        lines += integrity_errors(bom)

    if arguments.verbose:
        formats = sorted(set(cls.FORMAT_CHECKER.checkers) & {"date-time", "idn-email", "iri-reference", "uri"})
        if "uri" not in formats:
            formats.append("uri (scheme only, built in)")
        print(f"schema: {schema.get('$id')} ({cls.__name__}); schemas registered: "
              f"{', '.join(sorted(str(uri) for uri in registry))}; formats checked: {', '.join(formats)}",
              file=sys.stderr)
    if lines:
        for line in lines:
            print(line, file=sys.stderr)
        print(f"invalid: {sum(1 for line in lines if not line.startswith('    '))} error(s)", file=sys.stderr)
        return 1
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import Crypto
import Foundation
import SwiftASN1
import X509
import _FileSystem

/// A self-signed certificate and key for local use (`bulwark serve dev-cert`): ECDSA P-256, valid
/// 30 days, for `localhost`, 127.0.0.1 and ::1. Clients must trust it explicitly (`curl --cacert`);
/// production uses a certificate from a real CA (README).
public enum DevCertificate {
    public struct Files: Sendable {
        public let certificatePEM: String
        public let privateKeyPEM: String
    }

    public static func make(commonName: String = "bulwark dev", days: Int = 30, now: Date = Date()) throws -> Files {
        let key = P256.Signing.PrivateKey()
        let certificateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName { CommonName(commonName) }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames([
                .dnsName("localhost"),
                .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                .ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))),
            ])
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: certificateKey.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(Double(days) * 86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: certificateKey)
        return Files(certificatePEM: try certificate.serializeAsPEM().pemString + "\n", privateKeyPEM: key.pemRepresentation + "\n")
    }

    /// Writes `cert.pem` (0644) and `key.pem` (0600) into `directory`, atomically.
    public static func write(_ files: Files, to directory: String) throws -> (certificate: String, key: String) {
        let certificatePath = directory + "/cert.pem", keyPath = directory + "/key.pem"
        try AtomicFile.write(Array(files.privateKeyPEM.utf8), to: keyPath, permissions: 0o600)
        try AtomicFile.write(Array(files.certificatePEM.utf8), to: certificatePath, permissions: 0o644)
        return (certificatePath, keyPath)
    }
}
#endif

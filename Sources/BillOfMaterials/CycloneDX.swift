import Foundation

/// The parts of a CycloneDX 1.6 JSON document (ECMA-424, cyclonedx.org/docs/1.6/json) that Bulwark
/// writes: components with hashes and package URLs, a machine-learning model's model card, datasets,
/// and the dependency graph. Optional fields left nil are omitted.
public enum CycloneDX {
    public struct Document: Codable, Sendable {
        public var bomFormat = "CycloneDX"
        public var specVersion = "1.6"
        public var serialNumber: String
        public var version = 1
        public var metadata: Metadata
        public var components: [Component]
        public var dependencies: [Dependency]

        public init(metadata: Metadata, components: [Component], dependencies: [Dependency]) {
            serialNumber = "urn:uuid:" + UUID().uuidString.lowercased()
            self.metadata = metadata
            self.components = components
            self.dependencies = dependencies
        }

        /// Pretty JSON with sorted keys.
        public func encoded() throws -> Data {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            return try encoder.encode(self) + Data("\n".utf8)
        }
    }

    public struct Metadata: Codable, Sendable {
        public var timestamp: String
        public var tools: Tools
        public var component: Component

        public init(tool: Component, component: Component, date: Date = Date()) {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime]
            timestamp = formatter.string(from: date)
            tools = Tools(components: [tool])
            self.component = component
        }
    }

    public struct Tools: Codable, Sendable {
        public var components: [Component]
    }

    public struct Component: Codable, Sendable {
        public var type: String
        public var bomRef: String?
        public var name: String
        public var version: String?
        public var description: String?
        public var hashes: [Hash]?
        public var purl: String?
        public var licenses: [LicenseChoice]?
        public var externalReferences: [ExternalReference]?
        public var properties: [Property]?
        public var modelCard: ModelCard?
        public var data: [ComponentData]?
        public var components: [Component]?

        enum CodingKeys: String, CodingKey {
            case type, bomRef = "bom-ref", name, version, description, hashes, purl, licenses, externalReferences, properties, modelCard, data, components
        }

        public init(type: String, bomRef: String? = nil, name: String, version: String? = nil, description: String? = nil) {
            self.type = type
            self.bomRef = bomRef
            self.name = name
            self.version = version
            self.description = description
        }
    }

    public struct Hash: Codable, Sendable, Equatable {
        public var alg: String
        public var content: String

        public static func sha256(_ hex: String) -> Hash { Hash(alg: "SHA-256", content: hex) }
    }

    public struct LicenseChoice: Codable, Sendable {
        public var license: License
        public struct License: Codable, Sendable { public var id: String }
        public init(spdx id: String) { license = License(id: id) }
    }

    public struct ExternalReference: Codable, Sendable {
        public var type: String
        public var url: String
        public var hashes: [Hash]?
    }

    public struct Property: Codable, Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public struct Dependency: Codable, Sendable {
        public var ref: String
        public var dependsOn: [String]?
    }

    // MARK: - Model cards (CycloneDX 1.5+)

    public struct ModelCard: Codable, Sendable {
        public var modelParameters: ModelParameters
        public var quantitativeAnalysis: QuantitativeAnalysis?
        public var considerations: Considerations?
        public var properties: [Property]?
    }

    public struct ModelParameters: Codable, Sendable {
        public var approach: Approach
        public var task: String
        public var architectureFamily: String
        public var modelArchitecture: String
        public var datasets: [DatasetReference]?
        public var inputs: [Format]
        public var outputs: [Format]

        public struct Approach: Codable, Sendable { public var type: String }
        public struct DatasetReference: Codable, Sendable { public var ref: String }
        public struct Format: Codable, Sendable { public var format: String }
    }

    public struct QuantitativeAnalysis: Codable, Sendable {
        public var performanceMetrics: [PerformanceMetric]
    }

    /// Values are strings in the schema; the interval's confidence level goes in `slice`.
    public struct PerformanceMetric: Codable, Sendable {
        public var type: String
        public var value: String
        public var slice: String
        public var confidenceInterval: ConfidenceInterval?
        public struct ConfidenceInterval: Codable, Sendable {
            public var lowerBound: String
            public var upperBound: String
        }
    }

    public struct Considerations: Codable, Sendable {
        public var useCases: [String]?
        public var technicalLimitations: [String]?
        public var performanceTradeoffs: [String]?
    }

    // MARK: - Data (CycloneDX 1.5+)

    public struct ComponentData: Codable, Sendable {
        public var type: String
        public var name: String
        public var contents: Contents?
        public var classification: String?
        public var description: String?

        public struct Contents: Codable, Sendable {
            public var url: String?
            public var properties: [Property]?
        }
    }
}

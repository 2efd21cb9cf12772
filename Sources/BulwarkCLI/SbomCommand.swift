import ArgumentParser
import BillOfMaterials
import BulwarkSecurity
import Datasets
import Foundation
import NeuralNet
import Robustness
import _FileSystem

/// `bulwark sbom MODEL | --self`: CycloneDX 1.6 bills of materials.
struct SbomCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbom",
        abstract: "Write a CycloneDX 1.6 bill of materials: a model's ML-BOM, or Bulwark's own SBOM (--self).",
        discussion: """
        For a model: the model (SHA-256, a model card with architecture, training recipe, data, and the clean,
        robust and certified accuracy of its Bulwark card MODEL.card.json when there is one), the training and
        test data with their files' digests, Bulwark, the Swift packages it was built with and the system
        libraries it links. Every file is verified before it is described, as for any command.
        Examples:
          bulwark sbom models/mlp-pgd.safetensors --out mlp-pgd.cdx.json
          bulwark sbom --self --out bulwark.cdx.json
        """)

    @Argument(help: "The model file (.safetensors).")
    var model: String?

    @Flag(name: .customLong("self"), help: "Bulwark's own software bill of materials instead of a model's.")
    var describeBulwark = false

    @Option(help: ArgumentHelp("Write the document here (atomically) instead of to standard output.", valueName: "file"))
    var out: String?

    @Option(help: ArgumentHelp("MNIST-format directory of the model's training and test data (default: as for train).", valueName: "dir"))
    var dataDir: String?

    @Flag(help: "Leave the data out (a model trained on data that is not at hand).")
    var noData = false

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Security") var security: SecurityOptions

    func validate() throws {
        switch (model, describeBulwark) {
        case (nil, false): throw ValidationError("give a MODEL file, or --self for Bulwark's own bill of materials")
        case (_?, true): throw ValidationError("give either a MODEL or --self, not both")
        default: break
        }
        if describeBulwark && (dataDir != nil || noData) { throw ValidationError("--data-dir and --no-data describe a model's data; --self has none") }
        if noData && dataDir != nil { throw ValidationError("give either --data-dir or --no-data") }
    }

    func run() throws {
        if let out { try OutputPath.prepare(out, for: "--out", replacing: [.sbom], inputs: model.map { [$0] } ?? [], force: false) }
        let document = try model.map(modelDocument) ?? SoftwareBOM.document()
        let bytes = try document.encoded()
        guard let out else {
            FileHandle.standardOutput.write(bytes)
            return
        }
        try AtomicFile.write(Array(bytes), to: out)
        print("wrote \(out) (CycloneDX \(document.specVersion), \(document.components.count) components)")
    }

    func modelDocument(_ path: String) throws -> CycloneDX.Document {
        let loader = try security.loader(model: path)
        let loaded = try modelOptions.load(path, loader: loader)
        guard let digest = loader.digests[path] else { throw CLIError.unusableInput("\(path) was not hashed while loading") }
        var card: ModelCard?, cardDigest: String?
        let cardPath = ModelCard.path(forModel: path)
        if FileManager.default.fileExists(atPath: cardPath) {
            let parsed = try StrictJSON.decode(ModelCard.self, from: try loader.load(cardPath, limit: 16 << 20), integerKeys: [])
            if parsed.sha256 == digest {
                card = parsed
                cardDigest = loader.digests[cardPath]
            } else {
                log.warning("\(cardPath) describes another version of \(path) (SHA-256 \(parsed.sha256), the file's is \(digest)); its metrics are left out")
            }
        }
        // What the model's own record says it was trained and tested on.
        let recipeData = loaded.metadata["recipe"].flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }?["dataset"] as? String
        let datasets = noData ? [] : try describeData(loader: loader, recorded: [card?.data, recipeData].compactMap { $0 })
        let name = PathText.name(of: path).replacingOccurrences(of: ".safetensors", with: "")
        let bom = ModelBOM(name: name, file: path, sha256: digest, spec: loaded.network.spec, recipe: loaded.metadata["recipe"],
                           card: card, cardSHA256: cardDigest, datasets: datasets)
        return bom.document()
    }

    /// The train and test splits of the data directory, each file verified and hashed, and whether
    /// they are the data the model's record (`recorded`: its card's and recipe's descriptions) names.
    func describeData(loader: VerifyingFileLoader, recorded: [String]) throws -> [ModelBOM.Dataset] {
        let source = try DataSource.locate(dataDirectory: dataDir)
        var datasets: [ModelBOM.Dataset] = []
        for split in [Split.train, .test] where MNISTFormat.hasSplit(split, in: source.directory) {
            var files: [(name: String, sha256: String)] = []
            var origins = Set<String>()
            for kind in ["images", "labels"] {
                guard let file = MNISTFormat.file(kind, split: split, in: source.directory) else { continue }
                _ = try loader.load(file, limit: 1 << 31)
                guard let digest = loader.digests[file] else { continue }
                files.append((PathText.name(of: file), digest))
                if let known = KnownDigests.digest(forFileNamed: PathText.name(of: file)), known.sha256 == digest { origins.insert(known.origin) }
            }
            let labels = try MNISTFormat.file("labels", split: split, in: source.directory).map { try IDXFile(contentsOf: $0, loader: loader) }
            let known = origins.count == 1 && files.count == 2
            // The record names a directory (or, for the Debian files, their package); data elsewhere is
            // only "data at hand", not what the model was trained and tested on.
            let named = recorded.contains { $0.contains(source.directory) || (known && $0.contains("dataset-fashion-mnist")) }
            let note: String? = recorded.isEmpty
                ? "given to bulwark sbom; the model records no training data to check it against"
                : named ? nil : "given to bulwark sbom, but the model's record names other data: \(recorded[0])"
            if !recorded.isEmpty && !named {
                log.warning("\(source.directory) is not the data \(model ?? "the model") records (\(recorded[0])); it is listed as data at hand, not as the model's datasets")
            }
            datasets.append(ModelBOM.Dataset(name: known ? "fashion-mnist" : PathText.name(of: source.directory), split: split == .train ? "train" : "test",
                                             directory: source.directory, examples: labels?.dimensions.first, files: files,
                                             origin: known ? origins.first : nil, matchesRecord: recorded.isEmpty || named, note: note))
        }
        return datasets
    }
}

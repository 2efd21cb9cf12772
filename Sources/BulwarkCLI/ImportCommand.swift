import ArgumentParser
import Foundation
import NeuralNet
import BulwarkSecurity
import _FileSystem

/// `bulwark import`: converts a safetensors file written by PyTorch from a `torch.nn.Sequential` of
/// `Linear` layers into a Bulwark model file (with its architecture in the metadata), recorded in
/// the manifest beside it.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Convert a PyTorch nn.Sequential safetensors file into a Bulwark model file.",
        discussion: """
        The file holds only weights: the activations between the Linear layers must be named (one \
        for all, or one per hidden layer). In PyTorch: safetensors.torch.save_file(model.state_dict(), "model.safetensors").

        Examples:
          bulwark import model.safetensors --activation relu --out models/imported.safetensors --expect-sha256 HEX
          bulwark import model.safetensors --activation relu,tanh --out models/imported.safetensors --allow-unverified
        """
    )

    @Argument(help: "safetensors file written by PyTorch.")
    var input: String

    @Option(help: ArgumentHelp("The Bulwark model file to write (.safetensors).", valueName: "path"))
    var out: String

    @Flag(help: "Replace an existing output file of another kind (never one of the command's inputs).")
    var force = false

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Security") var security: SecurityOptions

    func validate() throws {
        if modelOptions.activation == nil { throw ValidationError("--activation is needed: the file cannot record its activations") }
        if !out.hasSuffix(".safetensors") { throw ValidationError("--out must name a .safetensors file, got '\(out)'") }
    }

    func run() throws {
        try OutputPath.prepare(out, for: "--out", replacing: [.model], inputs: [input], force: force)
        let loader = try security.loader(model: input)
        let loaded = try modelOptions.load(input, loader: loader)
        guard loaded.inferredArchitecture else {
            throw CLIError.unusableInput("\(input) is already a Bulwark model file (it records its architecture); nothing to import")
        }
        let digest = try loader.digests[input] ?? FileDigest.sha256(path: input)
        try ModelFile.save(loaded.network, metadata: ["imported_from": input, "source_sha256": digest], to: out)
        let written = try ModelLoading.record(out, recipe: "bulwark import \(input)")
        print("imported \(input) as \(loaded.network.spec.torchSequential)")
        print("saved \(out) (SHA-256 \(written))")
    }
}

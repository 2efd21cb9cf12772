import Attacks
import NeuralNet

extension TrainingRecipe {
    /// The shipped standard model (`models/mlp-standard.safetensors`): a 784-256-256-10 ReLU MLP,
    /// Adam 1e-3, batch 128, 5 epochs, seed 0.
    public static let standardMLP = TrainingRecipe(
        architecture: try! ModelSpec.parse("784-256-256-10"), seed: 0, epochs: 5, batchSize: 128)

    /// The shipped PGD-trained model (`models/mlp-pgd.safetensors`), the "90/10" recipe: the same
    /// network trained with PGD-7, α = 0.025, ε = 0.1 (L∞) on 90% of each batch (10% stay clean),
    /// 100 epochs, Adam 1e-3 with a cosine schedule, seed 0. (The shipped file was trained when the
    /// mix was counted per shard, which put one more adversarial row in each epoch's last batch.)
    public static let pgdMLP = TrainingRecipe(
        architecture: try! ModelSpec.parse("784-256-256-10"), seed: 0, epochs: 100, batchSize: 128,
        schedule: .cosine(minimum: 0),
        objective: .adversarial(AdversarialTrainingSpec(
            attack: .pgd(try! PGD.Parameters(steps: 7, stepSize: .absolute(0.025))), epsilon: 0.1, mix: 0.9)))

    /// "Madry": PGD adversarial training as Madry et al. (2018) define it, every example of every
    /// batch replaced by its PGD example (PGD-7, α = 0.025, ε = 0.1, random start); otherwise as
    /// `pgdMLP`.
    public static let madryMLP: TrainingRecipe = {
        var recipe = pgdMLP
        recipe.objective = .adversarial(AdversarialTrainingSpec(
            attack: .pgd(try! PGD.Parameters(steps: 7, stepSize: .absolute(0.025))), epsilon: 0.1, mix: 1))
        return recipe
    }()

    /// The shipped certified model (`models/mlp-crown-ibp.safetensors`): a 784-512-512-10 ReLU MLP
    /// trained with CROWN-IBP (Zhang et al., 2020) at ε = 0.11 (L∞): 2 epochs of clean training, then
    /// over 40 epochs ε rising to 0.11, κ falling to 0 and the CROWN-IBP weight β falling from 1 to 0
    /// (IBP alone afterwards), 100 epochs in all, Adam 5e-4 with a cosine schedule, seed 0. Chosen on
    /// the held-out validation split (IBP-certified at ε = 0.11: 0.683, against 0.670 for the same
    /// schedule on 784-256-256-10 over 80 epochs with a 30-epoch ramp, and 0.658 for that one with
    /// IBP alone), before its test accuracy was measured.
    public static let crownIBPMLP = TrainingRecipe(
        architecture: try! ModelSpec.parse("784-512-512-10"), seed: 0, epochs: 100, batchSize: 128,
        optimizer: .adam(learningRate: 5e-4, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false),
        schedule: .cosine(minimum: 0),
        objective: .certified(CertifiedTrainingSpec(crownIBP: true, epsilon: 0.11, warmupEpochs: 2, rampEpochs: 40, finalKappa: 0)))

    /// The shipped recipes by name (`standard`, `pgd-90`, `madry`, `crown-ibp`).
    public static let shipped: [String: TrainingRecipe] = ["standard": standardMLP, "pgd-90": pgdMLP, "madry": madryMLP,
                                                           "crown-ibp": crownIBPMLP]
}

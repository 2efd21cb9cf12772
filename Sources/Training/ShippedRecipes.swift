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

    /// The shipped certified model (`models/mlp-ibp.safetensors`): the same network trained with
    /// interval bound propagation (Gowal et al., 2018) at ε = 0.11 (L∞): 2 epochs of clean training,
    /// ε rising to 0.11 and κ falling to 0 over 30 epochs, 80 epochs in all, Adam 5e-4 with a cosine
    /// schedule, seed 0.
    public static let ibpMLP = TrainingRecipe(
        architecture: try! ModelSpec.parse("784-256-256-10"), seed: 0, epochs: 80, batchSize: 128,
        optimizer: .adam(learningRate: 5e-4, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false),
        schedule: .cosine(minimum: 0),
        objective: .certified(CertifiedTrainingSpec(epsilon: 0.11, warmupEpochs: 2, rampEpochs: 30, finalKappa: 0)))

    /// The shipped recipes by name (`standard`, `pgd-90`, `madry`, `ibp`).
    public static let shipped: [String: TrainingRecipe] = ["standard": standardMLP, "pgd-90": pgdMLP, "madry": madryMLP, "ibp": ibpMLP]
}

/// What a key may do. The routes each role may use are in one table, `Routes.policy`.
public enum Role: String, Codable, Sendable, CaseIterable {
    /// Everything: predictions, model reloads, metrics and the audit log.
    case admin
    /// Predictions and the model list.
    case predictor
    /// Metrics, the audit log and the model list: read-only oversight, no predictions.
    case auditor
}

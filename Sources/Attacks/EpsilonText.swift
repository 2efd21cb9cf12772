import Foundation

/// ε as reports, logs and metric names print it: 0.05, not 0.0500000007. An attack's Float ε and a
/// certificate's Double ε of the same value give the same text, so their metrics line up.
public func formatEpsilon(_ epsilon: Float) -> String {
    String(format: "%g", Double(epsilon))
}

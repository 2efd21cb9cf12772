/// The linear relaxation of a piecewise-linear activation σ(x) = x for x ≥ 0, s·x below (ReLU: s = 0;
/// leaky ReLU: its slope) on an input interval [l, u], as CROWN uses it (Zhang et al. 2018):
/// σ(x) ≥ a_L·x and σ(x) ≤ a_U·x + b_U on [l, u]. A stable neuron is its own line; an unstable one
/// gets the chord through (l, s·l) and (u, u) above and, below, the adaptive slope: 1 if u ≥ −l,
/// else s (the line of smaller area). Shared by the certifier (Float64) and CROWN-IBP training
/// (Float32).
@inlinable
func piecewiseLinearRelaxation<T: BinaryFloatingPoint>(lower l: T, upper u: T, negativeSlope s: T)
    -> (lowerSlope: T, upperSlope: T, upperIntercept: T) {
    if u <= 0 { return (s, s, 0) }
    if l >= 0 { return (1, 1, 0) }
    let chord = (u - s * l) / (u - l)
    return (u >= -l ? 1 : s, chord, l * (s - chord))
}

import Foundation

/// The ROC curve of a membership score (higher means "member"), computed exactly.
///
/// - AUC: the Mann–Whitney statistic, P(score of a member > score of a non-member) with ties
///   counted ½ (mid-ranks).
/// - TPR at FPR f: the largest true-positive rate of any threshold whose false-positive rate is
///   at most f (Carlini et al., 2022, report attacks this way: a membership attack matters when it
///   is right about some members while almost never wrong). It is only meaningful when
///   f · non-members ≥ 1; below that it is the TPR at zero false positives.
/// - Points: the curve's corners, thinned to at most `maxPoints`, for plots.
public struct ROCCurve: Sendable, Equatable {
    public struct Point: Sendable, Equatable, Encodable {
        public var fpr: Double
        public var tpr: Double
    }

    public let auc: Double
    public let members: Int
    public let nonMembers: Int
    /// Every corner of the curve, from (0, 0) to (1, 1).
    public let corners: [Point]

    /// - Precondition: at least one member and one non-member; scores are not NaN.
    public init(scores: [Double], isMember: [Bool]) {
        precondition(scores.count == isMember.count, "\(scores.count) scores for \(isMember.count) membership bits")
        precondition(!scores.contains { $0.isNaN }, "membership scores must not be NaN")
        let positives = isMember.filter { $0 }.count
        let negatives = isMember.count - positives
        precondition(positives > 0 && negatives > 0, "a ROC curve needs members and non-members")
        members = positives
        nonMembers = negatives

        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var corners = [Point(fpr: 0, tpr: 0)]
        var (tp, fp) = (0, 0)
        // Mid-rank AUC: within a tie group of p members and n non-members, each pair counts ½.
        var concordant = 0.0
        var start = 0
        while start < order.count {
            var end = start
            var (groupTP, groupFP) = (0, 0)
            while end < order.count && scores[order[end]] == scores[order[start]] {
                if isMember[order[end]] { groupTP += 1 } else { groupFP += 1 }
                end += 1
            }
            // Members in this group beat every non-member ranked below, which is all but the fp
            // counted so far and this group's.
            concordant += Double(groupTP) * (Double(negatives - fp - groupFP) + 0.5 * Double(groupFP))
            tp += groupTP
            fp += groupFP
            corners.append(Point(fpr: Double(fp) / Double(negatives), tpr: Double(tp) / Double(positives)))
            start = end
        }
        auc = concordant / (Double(positives) * Double(negatives))
        self.corners = corners
    }

    /// The largest TPR at FPR ≤ `fpr`.
    public func tpr(atFPR fpr: Double) -> Double {
        corners.reduce(0) { $1.fpr <= fpr + 1e-15 ? max($0, $1.tpr) : $0 }
    }

    /// At most `maxPoints` (≥ 2) corners for plotting: (0, TPR at zero FPR), then the exact best TPR
    /// at log-spaced FPRs from 1/non-members to 1.
    public func points(maxPoints: Int = 200) -> [Point] {
        let lowest = 1 / Double(nonMembers)
        var result = [Point(fpr: 0, tpr: tpr(atFPR: 0))]
        let steps = max(maxPoints - 2, 1)
        for k in 0...steps {
            let f = k == steps ? 1 : lowest * Foundation.pow(1 / lowest, Double(k) / Double(steps))
            let point = Point(fpr: f, tpr: tpr(atFPR: f))
            if point != result.last { result.append(point) }
        }
        return result
    }
}

/// The version of Bulwark recorded in reports, model files and cards.
public enum BulwarkVersion {
    public static let current = "0.3.0"
}

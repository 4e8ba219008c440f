/// Facts about this build, shared by the three executables.
public enum BuildInfo {
  /// The release version (CHANGELOG.md has a section per version).
  public static let version = "0.2.0"
}

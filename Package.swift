// swift-tools-version:6.0
// GridEdge: an edge agent for electricity distribution.
//
// Every target under Sources/ also compiles as Embedded Swift: `cross/build.sh`
// reads this manifest (`swift package describe`) and compiles the same targets
// with `-enable-experimental-feature Embedded` for x86_64, aarch64 and armv7.
// This manifest is the host (full Swift) build used by `swift build` and
// `swift test`.
import PackageDescription

let package = Package(
  name: "GridEdge",
  products: [
    .executable(name: "gridedge", targets: ["gridedge"]),
    .executable(name: "gridedge-hq", targets: ["gridedge-hq"]),
    .executable(name: "gridedge-sim", targets: ["gridedge-sim"]),
  ],
  targets: [
    // C libraries, each through a system-library target.
    .systemLibrary(name: "CLibc", path: "Sources/CLibc"),
    .systemLibrary(
      name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
      providers: [.apt(["libsqlite3-dev"])]),
    .systemLibrary(
      name: "CMosquitto", path: "Sources/CMosquitto", pkgConfig: "libmosquitto",
      providers: [.apt(["libmosquitto-dev"])]),
    .systemLibrary(
      name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto",
      providers: [.apt(["libssl-dev"])]),

    // Libraries, dependencies pointing downwards (DESIGN.md §3).
    .target(name: "Runtime", dependencies: ["CLibc"]),
    .target(name: "SQLiteStore", dependencies: ["CSQLite"]),
    .target(name: "MosquittoClient", dependencies: ["CMosquitto"]),
    .target(name: "DLT645"),
    .target(name: "GridEdgeCore"),
    .target(
      name: "GridEdgeContract",
      dependencies: ["SQLiteStore", "CCrypto", "GridEdgeCore"]),
    .target(
      name: "GridEdgeAgent",
      dependencies: [
        "CLibc", "Runtime", "SQLiteStore", "MosquittoClient", "DLT645", "GridEdgeCore",
        "GridEdgeContract",
      ]),
    .target(
      name: "GridEdgeHQ",
      dependencies: [
        "CLibc", "Runtime", "SQLiteStore", "MosquittoClient", "GridEdgeContract", "GridEdgeCore",
      ]),
    .target(name: "MeterSim", dependencies: ["CLibc", "Runtime", "DLT645", "GridEdgeCore"]),

    // Executables: argument parsing and wiring only.
    .executableTarget(name: "gridedge", dependencies: ["Runtime", "GridEdgeAgent"]),
    .executableTarget(name: "gridedge-hq", dependencies: ["Runtime", "MosquittoClient", "GridEdgeHQ"]),
    .executableTarget(name: "gridedge-sim", dependencies: ["Runtime", "MeterSim"]),

    // Tests (full Swift; may use Foundation).
    .target(name: "TestSupport", path: "Tests/TestSupport"),
    .testTarget(name: "RuntimeTests", dependencies: ["Runtime"]),
    .testTarget(name: "SQLiteStoreTests", dependencies: ["SQLiteStore", "TestSupport"]),
    .testTarget(
      name: "MosquittoClientTests", dependencies: ["MosquittoClient", "TestSupport"]),
    .testTarget(name: "DLT645Tests", dependencies: ["DLT645"]),
    .testTarget(name: "DomainTests", dependencies: ["GridEdgeCore"]),
    .testTarget(
      name: "ContractTests", dependencies: ["GridEdgeContract", "SQLiteStore", "TestSupport"]),
    .testTarget(name: "MeterSimTests", dependencies: ["MeterSim", "DLT645", "TestSupport", "gridedge-sim"]),
    .testTarget(
      name: "AgentTests",
      dependencies: [
        "GridEdgeAgent", "GridEdgeHQ", "TestSupport", "gridedge", "gridedge-hq", "gridedge-sim",
      ]),
  ],
  swiftLanguageModes: [.v5]
)

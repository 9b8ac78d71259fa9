// swift-tools-version:5.9
// Vigie for iOS (and macOS, for `swift test`). Before building, run scripts/build-ios.sh on a
// Mac: it builds VigieFFI.xcframework (the Rust library for devices, simulators and macOS) and
// writes Sources/Vigie/{Vigie,VigieCore}.swift (the generated bindings).
import PackageDescription

let package = Package(
    name: "Vigie",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Vigie", targets: ["Vigie"]),
    ],
    targets: [
        // The C interface of libvigie.a (module VigieFFI: VigieFFI.h, VigieCoreFFI.h + module.modulemap).
        .binaryTarget(name: "VigieFFI", path: "VigieFFI.xcframework"),
        // The generated Swift bindings (Vigie.swift, VigieCore.swift) and HubTransport.
        .target(
            name: "Vigie",
            dependencies: ["VigieFFI"],
            path: "Sources/Vigie",
            linkerSettings: [.linkedFramework("Security")]
        ),
        .testTarget(name: "VigieTests", dependencies: ["Vigie"], path: "Tests/VigieTests"),
    ]
)

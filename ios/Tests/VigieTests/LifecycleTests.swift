// Records leaving the store, for `swift test` on a Mac (see FieldDayTests.swift): the same
// surfaces as android/src/test/kotlin/org/vigie/LifecycleTest.kt and
// bindings/python/tests/test_lifecycle.py where no hub administration is needed.
import Foundation
import Vigie
import XCTest

final class LifecycleTests: XCTestCase {
    /// A revoked device is told so in its own type; its records leave at once (the listeners
    /// hear of each), the file stays revoked, and the app wipes the profile.
    func testARevokedDeviceRaisesDeviceRevokedAndTheWipeIsHeardOf() throws {
        let hubURL = try env("VIGIE_HUB_URL")
        let token = try env("VIGIE_REVOKED_TOKEN")
        let me = try parseEnrolmentToken(token: token)
        let vault = try freshVault()
        let store = try vault.createUser(userId: me.userId, deviceId: me.deviceId, pin: "482913")
        let kept = try addChild(store, "CI-L-0001", "Rokia Diarra")
        let recorder = Recorder()
        _ = store.addChangeListener(listener: recorder)
        XCTAssertThrowsError(try store.syncWith(
            transport: HubTransport(hubURL: URL(string: hubURL)!, token: token), progress: nil)) { error in
            guard case .DeviceRevoked(let reason)? = error as? VigieError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("revoked"), reason)
        }
        let removed = recorder.changes.filter { $0.removed != nil }
        XCTAssertEqual(removed.map { $0.id }, [kept.id])
        XCTAssertEqual(removed.first?.removed, .wiped)
        XCTAssertEqual(removed.first?.kind, .childCase)
        XCTAssertThrowsError(try store.count(kind: .childCase)) { error in
            guard case .ProfileWiped? = error as? VigieError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try vault.unlockWithPin(userId: me.userId, pin: "482913")) { error in
            guard case .DeviceRevoked? = error as? VigieError else { return XCTFail("\(error)") }
        }
        try vault.wipeUser(userId: me.userId)
        XCTAssertFalse(try vault.hasUser(userId: me.userId))
    }
}

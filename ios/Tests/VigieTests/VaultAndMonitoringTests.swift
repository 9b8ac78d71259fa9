// Several users on one phone and the monitoring cycle, on real files: the same surfaces as
// android/src/test/kotlin/org/vigie/{VaultTest,MonitoringTest}.kt and
// bindings/python/tests/{test_vault,test_monitoring}.py, for `swift test` on a Mac (see
// FieldDayTests.swift). None of these needs a hub.
import Foundation
import Vigie
import XCTest

/// A cheap derivation for tests; an app keeps the defaults (19 MiB, 2 passes).
func freshVault(maxFailedPins: Int32 = 3) throws -> Vault {
    try openVault(dir: try freshDirectory().appendingPathComponent("vault").path,
                  config: VaultConfig(kdfMemoryKib: 64, kdfIterations: 1, maxFailedPins: maxFailedPins))
}

func addChild(_ store: VigieStore, _ code: String, _ name: String, age: Int32 = 11,
              hazards: [String] = ["heavy_loads"], worstForms: [WorstForm] = []) throws -> ChildCase {
    var child = newChildCase(caseCode: code, name: name, sex: .female, area: community,
                             identifiedOn: "2026-03-02", identifiedBy: store.userId())
    child.estimatedAge = age
    child.hoursPerWeek = 20
    child.hazards = hazards
    child.worstForms = worstForms
    return try store.createChildCase(childCase: child)
}

final class VaultAndMonitoringTests: XCTestCase {
    func testWrongPinsCountDownAndTheLastOneWipesTheProfile() throws {
        let vault = try freshVault()
        let user = newId()
        let neighbour = newId()
        try vault.createUser(userId: user, deviceId: nil, pin: "482913").closeStore()
        let other = try vault.createUser(userId: neighbour, deviceId: nil, pin: "730615")
        _ = try addChild(other, "CI-V-0002", "Koffi Brou")
        XCTAssertThrowsError(try vault.unlockWithPin(userId: user, pin: "111112")) { error in
            guard case .WrongPin(let left)? = error as? VigieError else { return XCTFail("\(error)") }
            XCTAssertEqual(left, 2)
        }
        XCTAssertEqual(try vault.pinAttemptsLeft(userId: user), 2)
        XCTAssertThrowsError(try vault.unlockWithPin(userId: user, pin: "222223"))
        XCTAssertThrowsError(try vault.unlockWithPin(userId: user, pin: "333334")) { error in
            guard case .ProfileWiped? = error as? VigieError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try vault.users(), [neighbour])
        XCTAssertEqual(try other.count(kind: .childCase), 1)
    }

    func testPastTheFirstWrongPinsEachAttemptWaits() throws {
        let vault = try openVault(dir: try freshDirectory().appendingPathComponent("vault").path,
                                  config: VaultConfig(kdfMemoryKib: 64, kdfIterations: 1, maxFailedPins: 3,
                                                      pinDelayAfter: 1, pinDelaySeconds: 1))
        let user = newId()
        try vault.createUser(userId: user, deviceId: nil, pin: "482913").closeStore()
        XCTAssertThrowsError(try vault.unlockWithPin(userId: user, pin: "111112"))
        XCTAssertEqual(try vault.pinRetryInSeconds(userId: user), 1)
        XCTAssertThrowsError(try vault.unlockWithPin(userId: user, pin: "482913")) { error in
            guard case .PinLocked(let wait)? = error as? VigieError else { return XCTFail("\(error)") }
            XCTAssertEqual(wait, 1)
        }
        XCTAssertEqual(try vault.pinAttemptsLeft(userId: user), 2)
        Thread.sleep(forTimeInterval: 1.1)
        try vault.unlockWithPin(userId: user, pin: "482913").closeStore()
    }

    func testRotationKeepsRecordsAndCasesAreHandedOver() throws {
        let vault = try freshVault()
        let giver = newId()
        let receiver = newId()
        let a = try vault.createUser(userId: giver, deviceId: nil, pin: "482913")
        let aya = try addChild(a, "CI-H-0001", "Aya Kouassi")
        try vault.rotateKeyWithPin(store: a, pin: "482913")
        XCTAssertEqual(try a.getChildCase(id: aya.id).name, "Aya Kouassi")
        let handOver = try a.handOver(caseIds: [aya.id], toUserId: receiver)
        XCTAssertEqual(handOver.caseIds(), [aya.id])
        try a.closeStore()

        let b = try vault.createUser(userId: receiver, deviceId: nil, pin: "730615")
        XCTAssertEqual(try b.receiveHandOver(handOver: handOver), [aya.id])
        XCTAssertEqual(try b.getChildCase(id: aya.id).identifiedBy, receiver)
        try vault.wipeAll()
        XCTAssertThrowsError(try b.count(kind: .childCase)) { error in
            guard case .ProfileWiped? = error as? VigieError else { return XCTFail("\(error)") }
        }
    }

    func testTheWorkflowIsRoleAwareAndVisitsAreReturnedWithAComment() throws {
        let store = try openStore(path: try storePath("monitoring.db"), key: key(30), userId: newId(), deviceId: nil)
        var child = try addChild(store, "CI-W-0001", "Aya Kouassi")
        XCTAssertThrowsError(try store.asRole(.supervisor).transitionCase(caseId: child.id, status: .closed)) { error in
            guard case .NotAllowed(let reason)? = error as? VigieError else { return XCTFail("\(error)") }
            XCTAssertEqual(reason, "a case cannot go from identified to closed")
        }
        child = try store.asRole(.communityMonitor).referCase(caseId: child.id, referral: newReferral(
            service: .education, provider: "École", date: "2026-03-03"))
        child = try store.asRole(.communityMonitor).transitionCase(caseId: child.id, status: .receivingServices)
        XCTAssertThrowsError(try checkCaseTransition(from: .receivingServices, to: .withdrawn, by: .communityMonitor))

        let workplace = try store.createWorkplace(workplace: newWorkplace(
            name: "Plantation", sector: "cocoa", formality: .informal, area: community))
        var visit = try store.createVisit(visit: newVisit(kind: .labourInspection, workplaceId: workplace.id,
            area: community, visitorId: store.userId(), startedAt: "2026-03-02T09:00:00+00:00"))
        visit = try store.submitVisit(visitId: visit.id)
        visit = try store.asRole(.supervisor).reviewVisit(visitId: visit.id, review: .returnToVisitor(comment: "Préciser les âges."))
        XCTAssertEqual(visit.status, .returned)
        XCTAssertEqual(visit.reviewComment, "Préciser les âges.")

        let alerts = try store.alerts(area: nil, page: Page())
        XCTAssertEqual(alerts.map(\.severity), [.hazardousChildLabour])
        let indicators = try store.indicators(filter: IndicatorFilter())
        XCTAssertEqual(indicators.children.identified, 1)
        XCTAssertEqual(sharedCount(count: indicators.children.identified), "<5")
        let out = try freshDirectory().appendingPathComponent("export")
        let paths = try store.asRole(.communityMonitor).exportToDir(dir: out.path, format: .csv, options: ExportOptions())
        XCTAssertEqual(paths.count, 5)
        let csv = try String(contentsOf: out.appendingPathComponent("child_cases.csv"), encoding: .utf8)
        XCTAssertTrue(csv.contains("CI-W-0001"))
        XCTAssertFalse(csv.contains("Aya"))
    }

    func testReferenceLabelsInFrenchAndEnglish() throws {
        let store = try openStore(path: try storePath("reference.db"), key: key(31), userId: newId(), deviceId: nil)
        let fr = try store.reference(language: "fr")
        let en = try store.reference(language: "en")
        XCTAssertEqual(fr.sectors(country: nil).first { $0.code == "cocoa" }?.label, "Cacao")
        XCTAssertEqual(en.sectors(country: "CI").first { $0.code == "cocoa" }?.label, "Cocoa")
        XCTAssertEqual(fr.forcedLabourIndicators().count, 11)
        XCTAssertEqual(en.countryProfile(country: "CI")?.minimumAge, 15)
        let child = try addChild(store, "CI-R-0001", "Aya")
        XCTAssertEqual(child.capturedWith.countryProfile, "ilo-default@1")
    }
}

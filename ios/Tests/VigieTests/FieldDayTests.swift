// Swift tests for `swift test` on a Mac (not runnable on the project's Linux machines: no Swift
// toolchain there). Build the XCFramework with test hooks first:
//
//   ios/scripts/build-ios.sh --test-hooks
//
// The tests that need a hub read VIGIE_HUB_URL, VIGIE_MONITOR_TOKEN, VIGIE_SUPERVISOR_TOKEN,
// VIGIE_QUICKSTART_TOKEN and VIGIE_REVOKED_TOKEN (scripts/test-bindings.sh shows how to start a
// hub and enrol them) and are skipped without them.
import Foundation
import Vigie
import XCTest

let community = Area(country: "CI", region: "CI-R1", district: "CI-R1-D1", community: "CI-R1-D1-C01")

func env(_ name: String) throws -> String {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
        throw XCTSkip("\(name) is not set: start a hub as scripts/test-bindings.sh does")
    }
    return value
}

/// A fresh directory for store files.
func freshDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

func storePath(_ name: String) throws -> String {
    try freshDirectory().appendingPathComponent(name).path
}

/// A 256-bit key, as the Keychain would give one.
func key(_ seed: Int) -> Data {
    Data((0..<32).map { UInt8(truncatingIfNeeded: seed * 31 + $0) })
}

func newId() -> String { UUID().uuidString.lowercased() }

extension VigieStore {
    /// The store acting as `role` (as the hub tells a device at a sync), through the library's
    /// test hook (`build-ios.sh --test-hooks`): for the tests of the workflow without a hub.
    func asRole(_ role: Role, areas: [String] = ["CI-R1"]) throws -> VigieStore {
        try debugAssumeRole(role: role, areas: areas)
        return self
    }
}

func openEnrolled(_ path: String, _ seed: Int, _ token: String) throws -> VigieStore {
    let me = try parseEnrolmentToken(token: token)
    return try openStore(path: path, key: key(seed), userId: me.userId, deviceId: me.deviceId)
}

final class Recorder: ChangeListener, @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [RecordChange] = []
    private var bulkRecorded: [(ChangeSource, Int64)] = []

    func onChange(change: RecordChange) {
        lock.lock(); defer { lock.unlock() }
        recorded.append(change)
    }

    func onBulkChange(source: ChangeSource, records: Int64) {
        lock.lock(); defer { lock.unlock() }
        bulkRecorded.append((source, records))
    }

    var changes: [RecordChange] { lock.lock(); defer { lock.unlock() }; return recorded }
}

final class ProgressRecorder: SyncProgressListener, @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [SyncSummary] = []

    func onProgress(summary: SyncSummary) {
        lock.lock(); defer { lock.unlock() }
        recorded.append(summary)
    }

    var summaries: [SyncSummary] { lock.lock(); defer { lock.unlock() }; return recorded }
}

final class FieldDayTests: XCTestCase {
    func testAFieldDayFromTheVisitToTheHubAndBack() throws {
        let hub = URL(string: try env("VIGIE_HUB_URL"))!
        let monitorToken = try env("VIGIE_MONITOR_TOKEN")
        let supervisorToken = try env("VIGIE_SUPERVISOR_TOKEN")
        let monitor = try parseEnrolmentToken(token: monitorToken)
        let tablet = try openEnrolled(try storePath("tablet.db"), 2, supervisorToken)
        let phone = try openEnrolled(try storePath("phone.db"), 1, monitorToken)
        XCTAssertEqual(phone.deviceId(), monitor.deviceId)
        let recorder = Recorder()
        _ = phone.addChangeListener(listener: recorder)

        // The supervisor registers the workplace and sends it to the hub.
        var workplace = newWorkplace(name: "Plantation Kouamé", sector: "cocoa", formality: .informal, area: community)
        workplace.location.point = GeoPoint(latitude: 6.82, longitude: -5.28, accuracyM: 8)
        workplace = try tablet.createWorkplace(workplace: workplace)
        let registered = try tablet.syncWith(transport: HubTransport(hubURL: hub, token: supervisorToken), progress: nil)
        XCTAssertEqual(registered.accepted, 1)
        XCTAssertTrue(registered.refused.isEmpty)

        // The monitor's phone syncs: the hub tells it its user's role (the workflow acts with
        // it), and a community monitor receives the workplaces of her communities.
        XCTAssertNil(try phone.userProfile())
        _ = try phone.syncWith(transport: HubTransport(hubURL: hub, token: monitorToken), progress: nil)
        XCTAssertEqual(try phone.userProfile(), UserProfile(role: .communityMonitor, areas: ["CI-R1-D1-C01"]))
        XCTAssertEqual(try phone.getWorkplace(id: workplace.id).name, "Plantation Kouamé")

        // The monitor records a visit...
        var visit = newVisit(kind: .communityMonitoring, workplaceId: workplace.id, area: community,
                             visitorId: monitor.userId, startedAt: "2026-03-02T09:00:00+00:00")
        visit.findings = "Deux enfants portaient des charges lourdes."
        visit.forcedLabour = [.isolation: "Campement à 8 km"]
        visit = try phone.createVisit(visit: visit)
        XCTAssertEqual(visit.status, .draft)

        // ... flags a child ...
        var child = newChildCase(caseCode: "CI-D1-0001", name: "Aya Kouassi", sex: .female, area: community,
                                 identifiedOn: "2026-03-02", identifiedBy: monitor.userId)
        child.estimatedAge = 11
        child.hoursPerWeek = 25
        child.hazards = ["heavy_loads", "sharp_tools"]
        child.workplaceId = workplace.id
        child.identifiedOnVisit = visit.id
        child = try phone.createChildCase(childCase: child)
        XCTAssertEqual(child.classification?.outcome, .hazardousChildLabour)
        visit.childrenIdentified = [child.id]
        visit.endedAt = "2026-03-02T11:30:00+00:00"
        visit = try phone.updateVisit(visit: visit)
        visit = try phone.submitVisit(visitId: visit.id)

        // ... refers her to school and follows up, as the community monitor she is.
        child = try phone.referCase(caseId: child.id, referral: newReferral(
            service: .education, provider: "École primaire de Kouamé", date: "2026-03-03"))
        XCTAssertEqual(child.status, .referred)
        child = try phone.addFollowUp(caseId: child.id, followUp: newFollowUp(
            date: "2026-03-20", situation: .inSchool, nextDue: "2026-04-20"))
        child = try phone.transitionCase(caseId: child.id, status: .receivingServices)
        XCTAssertEqual(child.referrals.values.map(\.provider), ["École primaire de Kouamé"])

        let listed = try phone.childCases(query: ChildCaseQuery(area: .community("CI-R1-D1-C01")), page: Page())
        XCTAssertTrue(listed.map(\.id).contains(child.id)) // with what the hub sent her community before
        let due = try phone.followUpsDue(before: "2026-05-01", assigneeId: monitor.userId)
        XCTAssertTrue(due.contains { $0.id == child.id && $0.due == "2026-04-20" })
        XCTAssertTrue(try phone.history(id: child.id).count >= 4)

        // Sync, off the main thread as an app must.
        let progress = ProgressRecorder()
        let sent = try phone.syncWith(transport: HubTransport(hubURL: hub, token: monitorToken), progress: progress)
        XCTAssertEqual(sent.accepted, 2)
        XCTAssertTrue(sent.refused.isEmpty)
        XCTAssertEqual(sent.pending, 0)
        XCTAssertFalse(progress.summaries.isEmpty)

        // The supervisor receives the case and validates the visit; the phone receives that.
        let pulled = try tablet.syncWith(transport: HubTransport(hubURL: hub, token: supervisorToken), progress: nil)
        XCTAssertGreaterThanOrEqual(pulled.received, 2)
        XCTAssertEqual(try tablet.getChildCase(id: child.id).name, "Aya Kouassi")
        _ = try tablet.reviewVisit(visitId: visit.id, review: .validate)
        _ = try tablet.syncWith(transport: HubTransport(hubURL: hub, token: supervisorToken), progress: nil)
        _ = try phone.syncWith(transport: HubTransport(hubURL: hub, token: monitorToken), progress: nil)
        XCTAssertEqual(try phone.getVisit(id: visit.id).status, .validated)
        XCTAssertTrue(recorder.changes.contains { $0.id == visit.id && $0.source == .hub })
    }

    func testEveryErrorType() throws {
        let user = newId()
        let path = try storePath("errors.db")
        let store = try openStore(path: path, key: key(3), userId: user, deviceId: nil)

        var child = newChildCase(caseCode: "CI-0002", name: "Koffi", sex: .male, area: community,
                                 identifiedOn: "2026-03-02", identifiedBy: user)
        XCTAssertThrowsError(try store.createChildCase(childCase: child)) { error in
            guard case .Validation(let field, _)? = error as? VigieError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "date_of_birth")
        }
        XCTAssertThrowsError(try store.getVisit(id: newId())) { error in
            guard case .NotFound(let kind, _)? = error as? VigieError else { return XCTFail("\(error)") }
            XCTAssertEqual(kind, "visit")
        }
        let workplace = try store.createWorkplace(workplace: newWorkplace(
            name: "Atelier", sector: "textile", formality: .formal, area: community))
        XCTAssertThrowsError(try store.createWorkplace(workplace: workplace)) { error in
            guard case .Conflict? = error as? VigieError else { return XCTFail("\(error)") }
        }
        child.estimatedAge = 9
        child = try store.createChildCase(childCase: child)
        XCTAssertThrowsError(try store.asRole(.supervisor).transitionCase(caseId: child.id, status: .closed)) { error in
            guard case .NotAllowed(let reason)? = error as? VigieError else { return XCTFail("\(error)") }
            XCTAssertEqual(reason, "a case cannot go from identified to closed")
        }
        XCTAssertThrowsError(try store.importBundle(bytes: Data("not a bundle".utf8))) { error in
            guard case .DamagedInput? = error as? VigieError else { return XCTFail("\(error)") }
        }
        let offline = try storePath("offline.db")
        let unreachable = try openStore(path: offline, key: key(4), userId: user, deviceId: nil)
        XCTAssertThrowsError(try unreachable.syncWith(
            transport: HubTransport(hubURL: URL(string: "http://127.0.0.1:1")!, token: "vgd1.x"), progress: nil)
        ) { error in
            guard case .Transport? = error as? VigieError else { return XCTFail("\(error)") }
        }
        try store.closeStore()
        XCTAssertThrowsError(try store.count(kind: .visit)) { error in
            guard case .Storage? = error as? VigieError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try openStore(path: path, key: key(5), userId: user, deviceId: nil)) { error in
            guard case .Authentication? = error as? VigieError else { return XCTFail("\(error)") }
        }
    }

    func testARustPanicIsThrownAndTheStoreStaysUsable() throws {
        XCTAssertThrowsError(try debugPanic(message: "boom from Swift")) { error in
            XCTAssertFalse(error is VigieError, "a panic is uniffi's internal error, not a VigieError")
        }
        let store = try openStore(path: try storePath("panic.db"), key: key(6), userId: newId(), deviceId: nil)
        _ = try store.createWorkplace(workplace: newWorkplace(name: "Atelier", sector: "textile", formality: .formal, area: community))
        XCTAssertThrowsError(try store.debugPanicHoldingStore(message: "boom inside the store"))
        XCTAssertEqual(try store.count(kind: .workplace), 1)
    }

    func testTheReadmeQuickStartRunsAsWritten() throws {
        let summary = try recordAFieldDay(documents: try freshDirectory(), key: key(20),
                                          token: try env("VIGIE_QUICKSTART_TOKEN"),
                                          hubURL: URL(string: try env("VIGIE_HUB_URL"))!,
                                          workplaceId: newId())
        XCTAssertEqual(summary.accepted, 2)
    }
}

import Foundation
import Vigie

// Every store call blocks on SQLite: call this from a background queue, not the main thread.
func recordAFieldDay(documents: URL, key: Data, token: String, hubURL: URL, workplaceId: String) throws -> SyncSummary {
    let me = try parseEnrolmentToken(token: token) // the device's enrolment token
    let store = try openStore(path: documents.appendingPathComponent("vigie.db").path, key: key,
                              userId: me.userId, deviceId: me.deviceId)
    // The first sync (at enrolment, while online) tells the store its user's role and areas:
    // the workflow steps below act with them, and the hub checks them again.
    _ = try store.syncWith(transport: HubTransport(hubURL: hubURL, token: token), progress: nil)
    let area = Area(country: "CI", region: "CI-R1", district: "CI-R1-D1", community: "CI-R1-D1-C01")
    var visit = newVisit(kind: .communityMonitoring, workplaceId: workplaceId, area: area,
                         visitorId: me.userId, startedAt: "2026-03-02T09:00:00+00:00")
    visit.findings = "Deux enfants portaient des charges lourdes."
    visit = try store.createVisit(visit: visit)
    var child = newChildCase(caseCode: "CI-D1-0042", name: "Aya Kouassi", sex: .female, area: area,
                             identifiedOn: "2026-03-02", identifiedBy: me.userId)
    child.estimatedAge = 11
    child.hoursPerWeek = 25
    child.hazards = ["heavy_loads"] // codes from referenceHazards()
    child.identifiedOnVisit = visit.id
    child = try store.createChildCase(childCase: child)
    precondition(child.classification?.outcome == .hazardousChildLabour)
    child = try store.referCase(caseId: child.id, referral: newReferral(
        service: .education, provider: "École primaire de Kouamé", date: "2026-03-03"))
    _ = try store.addFollowUp(caseId: child.id, followUp: newFollowUp(
        date: "2026-03-20", situation: .inSchool, nextDue: "2026-04-20"))
    // One call for the whole session; or hubSyncRequest() / hubSyncApply(response:) over your own link.
    return try store.syncWith(transport: HubTransport(hubURL: hubURL, token: token), progress: nil)
}

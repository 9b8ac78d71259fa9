import Foundation

/// A `SyncTransport` over HTTP with URLSession: `POST <hub>/v1/sync` (records) and
/// `POST <hub>/v1/attachments` (attachments' chunks) with the device's enrolment token. Pass it
/// to `VigieStore.syncWith(transport:progress:attachments:)`, or bring your own transport.
///
/// `exchange` and `exchangeAttachment` block the calling thread until the hub answers: it is called on the thread that
/// runs the sync session, which must not be the main thread.
public final class HubTransport: SyncTransport, @unchecked Sendable {
    private let syncURL: URL
    private let attachmentsURL: URL
    private let authorization: String
    private let session: URLSession
    private let timeout: TimeInterval
    /// The most one exchange lasts (`timeout` bounds each wait for data): a body trickled a
    /// byte at a time holds no sync for ever.
    private let exchangeTimeout: TimeInterval
    /// The task under way, and whether the sync was cancelled (`abort`), from any thread.
    private let lock = NSLock()
    private var current: URLSessionDataTask?
    private var aborted = false

    public init(
        hubURL: URL, token: String, session: URLSession = .shared, timeout: TimeInterval = 120,
        exchangeTimeout: TimeInterval = 600
    ) {
        self.syncURL = hubURL.appendingPathComponent("v1").appendingPathComponent("sync")
        self.attachmentsURL = hubURL.appendingPathComponent("v1").appendingPathComponent("attachments")
        self.authorization = "Bearer " + token.trimmingCharacters(in: .whitespacesAndNewlines)
        self.session = session
        self.timeout = timeout
        self.exchangeTimeout = exchangeTimeout
    }

    /// Cancels the sync (a Cancel button, a `BGTask` that expires), from any thread: the
    /// exchange under way is cut, and every later one of this transport. The session ends
    /// with a `Transport` error saying it was cancelled; what was applied stays, and the next
    /// sync (with a new transport) goes on from there.
    public func abort() {
        lock.lock()
        aborted = true
        let task = current
        lock.unlock()
        task?.cancel()
    }

    private static let cancelled = "the sync was cancelled on this device"

    public func exchange(request: Data) throws -> Data {
        try post(request, to: syncURL)
    }

    public func exchangeAttachment(request: Data) throws -> Data {
        try post(request, to: attachmentsURL)
    }

    private func post(_ request: Data, to url: URL) throws -> Data {
        var http = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        http.httpMethod = "POST"
        http.setValue(authorization, forHTTPHeaderField: "Authorization")
        http.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        http.httpBody = request

        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let task = session.dataTask(with: http) { data, response, error in
            outcome.set(data: data, response: response, error: error)
            done.signal()
        }
        // No redirect is followed: it would carry the token (and the records) elsewhere, an
        // http:// one in the clear. The answer is the 3xx itself, refused below.
        task.delegate = NoRedirects.shared
        lock.lock()
        if aborted {
            lock.unlock()
            throw TransportError.Unreachable(reason: HubTransport.cancelled)
        }
        current = task
        lock.unlock()
        task.resume()
        let timedOut = done.wait(timeout: .now() + exchangeTimeout) == .timedOut
        if timedOut {
            task.cancel()
            done.wait()
        }
        lock.lock()
        current = nil
        let cancelled = aborted
        lock.unlock()
        if timedOut && !cancelled {
            throw TransportError.Unreachable(
                reason: "the hub's answer did not come whole in time: the link is too slow, or "
                    + "something on the way holds it back")
        }

        let (data, response, error) = outcome.get()
        if cancelled {
            throw TransportError.Unreachable(reason: HubTransport.cancelled)
        }
        if let error = error {
            throw TransportError.Unreachable(reason: HubTransport.networkFailure(error))
        }
        guard let answer = response as? HTTPURLResponse else {
            throw TransportError.Unreachable(reason: HubTransport.cut)
        }
        let status = answer.statusCode
        let type = answer.mimeType ?? ""
        if let data = data, data.count > HubTransport.maxAnswerBytes {
            throw TransportError.Unreachable(
                reason: "an answer larger than any hub's (\(HubTransport.maxAnswerBytes) bytes) was not read: "
                    + "something on the way answered in the hub's place")
        }
        if status == 413 && type == "application/octet-stream" {
            // An attachment over the hub's limits: the body is the refusal, with its figures,
            // for the session to record.
            return data ?? Data()
        }
        guard (200..<300).contains(status) else {
            if (300..<400).contains(status) {
                throw TransportError.Http(
                    status: Int32(status), reason: HubTransport.redirected(answer, from: url))
            }
            // The hub's refusals are JSON: a 401 or a 403 in another form is a portal's or a
            // proxy's, which must not read as a token to reissue or a right withheld.
            if [401, 403, 407, 511].contains(status) && !type.isEmpty && type != "application/json" {
                throw TransportError.Unreachable(reason: HubTransport.notTheHub(status))
            }
            if status == 403 && HubTransport.wipeRequested(data) {
                // The hub revoked this device: the app must wipe the profile, not retry.
                // With the order the hub signed, which the store checks before it wipes.
                throw TransportError.DeviceRevoked(
                    reason: HubTransport.hubMessage(data), order: HubTransport.wipeOrder(data))
            }
            throw TransportError.Http(status: Int32(status), reason: HubTransport.hubMessage(data))
        }
        if !type.isEmpty && type != "application/octet-stream" {
            throw TransportError.Unreachable(reason: HubTransport.notTheHub(status))
        }
        return data ?? Data()
    }

    private static let cut = "the hub's answer was cut on the way"

    /// Why the hub could not be reached, in the words every transport says, which the core's
    /// catalogues translate (`localizedDescription` is the system's, in its language, and
    /// reached the app's user as it was); else the failure's code.
    private static func networkFailure(_ error: Error) -> String {
        guard let failure = error as? URLError else {
            return "the network failed: \(type(of: error))"
        }
        switch failure.code {
        case .cannotConnectToHost:
            return "the hub's address refused the connection: is the hub running, at this address?"
        case .cannotFindHost, .dnsLookupFailed:
            return "the hub's address was not found: no network, or a wrong address"
        case .timedOut:
            return "no answer from the hub in time: the link is too slow, or down"
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
            .serverCertificateHasUnknownRoot, .serverCertificateNotYetValid,
            .clientCertificateRejected, .clientCertificateRequired:
            return "the hub's certificate was not accepted (a portal on the way, or a wrong address?)"
        case .networkConnectionLost, .badServerResponse, .zeroByteResource:
            return cut
        case .notConnectedToInternet, .dataNotAllowed, .internationalRoamingOff:
            return "no route to the hub: the device has no network"
        default:
            return "the network failed: URLError \(failure.code.rawValue)"
        }
    }

    /// Why a redirect was not followed, then where it pointed: its scheme and host only (a
    /// portal's path may carry anything).
    private static func redirected(_ answer: HTTPURLResponse, from url: URL) -> String {
        let words = "the hub's address answered with a redirect, not followed (the device's token goes "
            + "to the hub's own address only; set the hub's URL to the address it serves)"
        guard let location = answer.value(forHTTPHeaderField: "Location"),
              let target = URL(string: location, relativeTo: url)?.absoluteURL,
              let scheme = target.scheme, let host = target.host
        else { return words }
        let port = target.port.map { ":\($0)" } ?? ""
        return "\(words): \(scheme)://\(host)\(port)"
    }

    /// A sync answer is as large as its request asks (a few MiB at most), a chunk 256 KiB.
    private static let maxAnswerBytes = 64 * 1024 * 1024

    /// An answer in a form the hub never gives (a web page): a Wi-Fi that asks to sign in, or
    /// a proxy, answered in its place.
    private static func notTheHub(_ status: Int) -> String {
        "the network answered \(status) in the hub's place, not with its message: a Wi-Fi or a "
            + "proxy that asks to sign in first? Nothing was lost"
    }

    /// A field of the hub's JSON answer (its errors are `{"error": "..."}`; a revoked device's
    /// adds `"wipe": true` and the signed `"order"`); nil if the body is no such object.
    private static func field(_ data: Data?, _ name: String) -> Any? {
        guard let data = data,
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object[name]
    }

    /// A revoked device is answered 403 with `{"error": "...", "wipe": true, "order": "<hex>"}`.
    private static func wipeRequested(_ data: Data?) -> Bool {
        field(data, "wipe") as? Bool == true
    }

    /// The hub's signed order to wipe; empty if none.
    private static func wipeOrder(_ data: Data?) -> String {
        field(data, "order") as? String ?? ""
    }

    /// The hub's errors name the problem, never content.
    private static func hubMessage(_ data: Data?) -> String {
        field(data, "error") as? String ?? ""
    }
}

/// The result of one data task, handed from URLSession's queue to the waiting thread.
private final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    private var response: URLResponse?
    private var error: Error?

    func set(data: Data?, response: URLResponse?, error: Error?) {
        lock.lock()
        defer { lock.unlock() }
        self.data = data
        self.response = response
        self.error = error
    }

    func get() -> (Data?, URLResponse?, Error?) {
        lock.lock()
        defer { lock.unlock() }
        return (data, response, error)
    }
}

/// Refuses every redirect of the tasks it is the delegate of (`HubTransport`).
private final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    static let shared = NoRedirects()

    func urlSession(
        _ session: URLSession, task: URLSessionTask,
        willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
        completionHandler: @escaping (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}

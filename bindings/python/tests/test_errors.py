"""Every exception type, each from a real cause; and a Rust panic raised as an exception."""

import os

import pytest

import vigie
from conftest import as_role, key, new_id, open_enrolled, synced

AREA = vigie.Area(country="CI", region="CI-R1", district="CI-R1-D1", community="CI-R1-D1-C01")


def fresh(env, seed=3):
    return vigie.open_store(env.store_path("errors.db"), key(seed), new_id(), None)


def test_validation_names_the_field_and_never_the_value(env):
    with fresh(env) as store:
        child = vigie.new_child_case("CI-0002", "Koffi Brou", vigie.Sex.MALE, AREA, "2026-03-02",
                                     store.user_id())
        with pytest.raises(vigie.VigieError.Validation) as e:
            store.create_child_case(child)
        assert e.value.field == "date_of_birth"
        assert "Koffi" not in str(e.value)
        child.estimated_age = 12
        child.identified_on = "02/03/2026"
        with pytest.raises(vigie.VigieError.Validation) as e:
            store.create_child_case(child)
        assert e.value.field == "identified_on"
        assert e.value.text_in("fr") == "Identifié le : doit être un jour du calendrier, écrit AAAA-MM-JJ"
        # The text is a sentence, as in Kotlin and Swift.
        assert str(e.value) == f"invalid identified_on: {e.value.rule}"
        # A malformed id, in a record or as an argument, is refused naming its field.
        child.identified_on = "2026-03-02"
        child.identified_by = "not-a-uuid"
        with pytest.raises(vigie.VigieError.Validation) as e:
            store.create_child_case(child)
        assert e.value.field == "identified_by"
        with pytest.raises(vigie.VigieError.Validation) as e:
            store.get_child_case("not-a-uuid")
        assert e.value.field == "id"


def test_an_error_reads_in_the_users_language_as_the_console_says_it(env):
    with fresh(env) as store:
        child = vigie.new_child_case("CI-0004", "Koffi Brou", vigie.Sex.MALE, AREA, "2026-03-02",
                                     store.user_id())
        child.estimated_age = 12
        child.hours_per_week = 200
        with pytest.raises(vigie.VigieError.Validation) as e:
            store.create_child_case(child)
        french = e.value.text_in("fr")
        assert french.startswith("Heures par semaine : ") and "200" not in french, french
        assert e.value.text_in("fr-CI") == french and e.value.text_in("wo") == french
        english = e.value.text_in("en")
        assert english.startswith("Hours per week: "), english
        child.hours_per_week = 10
        child = store.create_child_case(child)
        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            as_role(store, vigie.Role.SUPERVISOR).transition_case(child.id, vigie.CaseStatus.CLOSED)
        assert e.value.text_in("fr").startswith("Refusé : "), e.value.text_in("fr")
        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            as_role(store, vigie.Role.COMMUNITY_MONITOR).transition_case(
                child.id, vigie.CaseStatus.WITHDRAWN)
        assert "« Identifié »" in e.value.text_in("fr"), e.value.text_in("fr")
        assert "Koffi" not in e.value.text_in("fr")
    with pytest.raises(vigie.VigieError.Authentication) as e:
        vigie.parse_enrolment_token("vgd1.x")
    assert e.value.text_in("fr") == (
        "Authentification refusée : jeton d'enrôlement mal formé : il a 2 parties séparées par "
        "des points, au lieu de 4"), e.value.text_in("fr")


def test_not_found_and_conflict(env):
    with fresh(env) as store:
        missing = new_id()
        with pytest.raises(vigie.VigieError.NotFound) as e:
            store.get_visit(missing)
        assert (e.value.kind, e.value.id) == ("visit", missing)
        w = store.create_workplace(vigie.new_workplace("Atelier", "textile", vigie.Formality.FORMAL, AREA))
        with pytest.raises(vigie.VigieError.Conflict):
            store.create_workplace(w)


def test_a_store_opens_unencrypted_only_when_asked_and_a_wrong_key_prints_nothing(env, capfd):
    user = new_id()
    plain = env.store_path("plain.db")
    with vigie.open_unencrypted_store(plain, user) as store:
        assert store.user_id() == user
    with pytest.raises(vigie.VigieError.Authentication):
        vigie.open_store(plain, key(8), user)
    keyed = env.store_path("keyed.db")
    vigie.open_store(keyed, key(8), user).close_store()
    with pytest.raises(vigie.VigieError.Authentication):
        vigie.open_unencrypted_store(keyed, user)
    with pytest.raises(vigie.VigieError.Authentication) as e:
        vigie.open_store(keyed, key(9), user)
    assert str(e.value).startswith("authentication failed: ")
    # What an app shows at unlock, in French whole.
    assert e.value.text_in("fr") == (
        "Authentification refusée : les données n'ont pas pu être ouvertes : mauvaise clé, ou ce "
        "n'est pas un fichier Vigie"), e.value.text_in("fr")
    # SQLCipher's own log of the failed page check stays off the app's stderr.
    assert "hmac" not in capfd.readouterr().err


def test_a_store_file_is_open_once_in_an_app(env):
    path = env.store_path("once.db")
    user = new_id()
    first = vigie.open_store(path, key(5), user, None)
    # A second object on the file would sync beside the first, its listeners deaf to it.
    with pytest.raises(vigie.VigieError.NotAllowed) as e:
        vigie.open_store(path, key(5), user, None)
    assert "open already" in str(e.value)
    # Nor through a link to it: the same file, whatever its path says.
    link = env.store_path("once-link.db")
    os.symlink(path, link)
    with pytest.raises(vigie.VigieError.NotAllowed):
        vigie.open_store(link, key(5), user, None)
    first.close_store()
    with vigie.open_store(path, key(5), user, None) as again:
        assert again.user_id() == user
    # Released, as a closed one, it opens again.
    vigie.open_store(path, key(5), user, None).close_store()


def test_not_allowed_and_authentication(env):
    path = env.store_path("keyed.db")
    user = new_id()
    with vigie.open_store(path, key(6), user, None) as store:
        child = vigie.new_child_case("CI-0003", "Awa", vigie.Sex.FEMALE, AREA, "2026-03-02", user)
        child.estimated_age = 9
        child = store.create_child_case(child)
        with pytest.raises(vigie.VigieError.NotAllowed):
            as_role(store, vigie.Role.SUPERVISOR).transition_case(child.id, vigie.CaseStatus.CLOSED)
    with pytest.raises(vigie.VigieError.Authentication):
        vigie.open_store(path, key(7), user, None)
    with pytest.raises(vigie.VigieError.Authentication):
        vigie.parse_enrolment_token("not a token")
    # A token copied by hand with a character missing says which part to look at, not the secret.
    secret = env.monitor_token.rsplit(".", 1)[1]
    with pytest.raises(vigie.VigieError.Authentication) as refused:
        vigie.parse_enrolment_token(env.monitor_token[:-1])
    assert "secret" in str(refused.value) and "63" in str(refused.value)
    assert secret[:8] not in str(refused.value)
    forged = env.monitor_token.rsplit(".", 1)[0] + "." + "0" * 64
    me = vigie.parse_enrolment_token(forged)
    with vigie.open_store(env.store_path("forged.db"), key(8), me.user_id, me.device_id) as store:
        with pytest.raises(vigie.VigieError.Authentication):
            store.sync_with(vigie.HubTransport(env.hub_url, forged), None)
    # A revoked device is told so in its own type (the app wipes the profile), not NotAllowed.
    me = vigie.parse_enrolment_token(env.revoked_token)
    with vigie.open_store(env.store_path("revoked.db"), key(9), me.user_id, me.device_id) as store:
        with pytest.raises(vigie.VigieError.DeviceRevoked):
            store.sync_with(vigie.HubTransport(env.hub_url, env.revoked_token), None)


def test_storage_damaged_input_and_transport(env):
    store = fresh(env)
    with pytest.raises(vigie.VigieError.DamagedInput):
        store.import_bundle(b"not a bundle")
    with pytest.raises(vigie.VigieError.DamagedInput):
        store.hub_sync_apply(bytes(64))
    with pytest.raises(vigie.VigieError.Transport) as e:
        store.sync_with(vigie.HubTransport("http://127.0.0.1:1", env.monitor_token), None)
    # Said in words, not the system's ("[Errno 111] Connection refused"), in French too.
    assert "refused the connection" in e.value.reason, e.value.reason
    french = e.value.text_in("fr")
    assert "a refusé la connexion" in french and "Errno" not in french, french

    # What an app's transport throws may quote anything it had at hand (here a child's name):
    # the error keeps the exception's type only.
    class Broken(vigie.SyncTransport):
        def exchange(self, request):
            raise RuntimeError("radio off near Aya Kouassi")

        def exchange_attachment(self, request):
            raise RuntimeError("radio off near Aya Kouassi")

    with pytest.raises(vigie.VigieError.Transport) as e:
        store.sync_with(Broken(), None)
    assert "RuntimeError" in e.value.reason
    assert "Aya" not in e.value.reason

    store.close_store()
    with pytest.raises(vigie.VigieError.Storage):
        store.count(vigie.RecordKind.VISIT)


def test_a_ctrl_c_or_exit_in_a_transport_reaches_the_script(env, capfd):
    """Ctrl-C while a sync waits in the app's transport (or its progress listener): the sync
    ends, and the script gets its KeyboardInterrupt, not a "hub unreachable" to retry; so does
    a SystemExit. Nothing is printed on the way."""
    for raised in (KeyboardInterrupt, SystemExit):

        class Interrupted(vigie.SyncTransport):
            def exchange(self, request):
                raise raised()

            def exchange_attachment(self, request):
                raise raised()

        with fresh(env) as store:
            with pytest.raises(raised):
                store.sync_with(Interrupted(), None)
            assert store.hub_outbox_len() == 0

    class Progress(vigie.SyncProgressListener):
        def on_progress(self, summary):
            raise KeyboardInterrupt()

    user = vigie.parse_enrolment_token(env.monitor_token).user_id
    token = env.enrol(user)
    with open_enrolled(env.store_path("interrupted.db"), 13, token) as store:
        with pytest.raises(KeyboardInterrupt):
            store.sync_with(vigie.HubTransport(env.hub_url, token), Progress())
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err


def test_a_ctrl_c_in_a_change_listener_reaches_the_script_once_the_write_is_done(env, capfd):
    for raised in (KeyboardInterrupt, SystemExit):

        class Interrupted(vigie.ChangeListener):
            def on_change(self, change):
                raise raised()

            def on_bulk_change(self, source, records):
                raise raised()

        with fresh(env) as store:
            store.add_change_listener(Interrupted())
            with pytest.raises(raised):
                store.create_workplace(
                    vigie.new_workplace("Atelier", "textile", vigie.Formality.FORMAL, AREA)
                )
            # The write returned before: it is there, and the next call is not interrupted.
            assert store.count(vigie.RecordKind.WORKPLACE) == 1
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err


def test_a_hub_address_or_wait_a_sync_would_fail_on_is_refused_naming_it():
    for url in ["hub.example.org", "https//hub.example.org", "127.0.0.1:26610",
                "ftp://hub.example.org", "https://hub.example.org:99999", "",
                "https://hub.example.org:0", "https://hub.example.org/\x00"]:
        with pytest.raises(ValueError, match="hub_url"):
            vigie.HubTransport(url, "token")
    for name, value in [("timeout", -1), ("timeout", float("nan")),
                        ("exchange_timeout", float("nan")), ("exchange_timeout", 0),
                        ("timeout", float("inf"))]:
        with pytest.raises(ValueError, match=name):
            vigie.HubTransport("https://hub.example.org", "token", **{name: value})
    with pytest.raises(TypeError, match="exchange_timeout"):
        vigie.HubTransport("https://hub.example.org", "token", exchange_timeout="60")
    for token in [" ", "abc\ndef", "\u200b", "jeton\u00e9"]:
        with pytest.raises(ValueError, match="token"):
            vigie.HubTransport("https://hub.example.org", token)
    with pytest.raises(ValueError, match="timeout"):
        vigie.HubTransport("https://hub.example.org", "token", timeout=1e300)
    with pytest.raises(TypeError, match="allow_cleartext"):
        vigie.HubTransport("http://hub.example.org", "token", allow_cleartext="no")
    with pytest.raises(ValueError, match="cafile"):
        vigie.HubTransport("https://hub.example.org", "token", cafile="/nowhere/ca.pem")
    with pytest.raises(ValueError, match="cafile"):
        vigie.HubTransport("https://hub.example.org", "token", cafile=__file__)
    vigie.HubTransport("https://hub.example.org:8443/", "token", timeout=30)


def test_a_transport_returning_another_type_than_bytes_is_told_so(env):
    # The hub's answer handed back as a bytearray (what a socket's reader fills) is its bytes:
    # it passed the check and failed in ctypes, said "hub unreachable" of a link that worked.
    # None is told for what it is rather than left to retry a link that works.
    user = vigie.parse_enrolment_token(env.monitor_token).user_id
    token = env.enrol(user)

    class Loose(vigie.SyncTransport):
        def __init__(self, answer):
            self.hub = vigie.HubTransport(env.hub_url, token)
            self.answer = answer

        def exchange(self, request):
            return self.answer(self.hub.exchange(request))

        def exchange_attachment(self, request):
            return self.answer(self.hub.exchange_attachment(request))

    with open_enrolled(env.store_path("loose.db"), 11, token) as store:
        with pytest.raises(vigie.VigieError.Transport) as e:
            store.sync_with(Loose(lambda answer: None), None)
        assert "other than bytes" in e.value.reason, e.value.reason
        for bytes_like in (bytearray, memoryview):
            report = store.sync_with(Loose(bytes_like), None)
            assert report.pending == 0 and report.round_trips > 0, report


def test_a_key_given_as_any_bytes_like_value_opens_the_store(tmp_path):
    path = str(tmp_path / "keyed.db")
    device = new_id()
    with vigie.open_store(path, bytearray(key(4)), device, None):
        pass
    with vigie.open_store(path, memoryview(key(4)), device, None):
        pass


def test_an_answer_cut_on_the_way_is_a_link_that_dropped_not_a_damaged_message(env):
    # A "hub" on 127.0.0.1 that reads the request, then sends part of an answer and closes.
    import socket
    import threading

    def cutting_hub(answer: bytes):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)

        def serve():
            for _ in range(4):
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                conn.settimeout(5)
                try:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    conn.sendall(answer)
                finally:
                    conn.close()

        threading.Thread(target=serve, daemon=True).start()
        return server, f"http://127.0.0.1:{server.getsockname()[1]}"

    store = fresh(env)
    for answer in [
        b"",  # closed before the status line
        b"HTTP/1.1 200 OK\r\nContent-",  # in the headers
        b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\nVGS1",  # in the body
        # An attachment's refusal over a limit, cut in its body.
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 500\r\n\r\nVGA1",
    ]:
        server, url = cutting_hub(answer)
        try:
            with pytest.raises(vigie.VigieError.Transport) as e:
                store.sync_with(vigie.HubTransport(url, env.monitor_token), None)
            said = e.value.reason
            assert any(w in said for w in ["cut", "reset", "closed"]), (answer, said)
            assert "the app's transport" not in said
        finally:
            server.close()
    store.close_store()


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(env):
    # A "hub" on 127.0.0.1 that redirects every request to another server (a captive portal, a
    # proxy misconfigured): the token never reaches the other one, and the error says why.
    import http.server
    import threading

    reached = []

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            reached.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Other)
    target = f"http://localhost:{other.server_address[1]}/login"

    class Redirecting(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    hub = http.server.HTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (other, hub):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    store = fresh(env)
    try:
        with pytest.raises(vigie.VigieError.Transport) as e:
            store.sync_with(vigie.HubTransport(f"http://127.0.0.1:{hub.server_address[1]}",
                                               env.monitor_token), None)
        assert "redirect, not followed" in e.value.reason, e.value.reason
        assert e.value.reason.endswith(": http://localhost:" + str(other.server_address[1])), e.value.reason
        french = e.value.text_in("fr")
        assert "redirection, non suivie" in french and "not followed" not in french, french
        assert reached == []
    finally:
        hub.shutdown()
        other.shutdown()
        store.close_store()


def test_what_answers_in_the_hubs_place_is_said_so_and_bounded(env):
    # A Wi-Fi that asks to sign in, a proxy whose plan ran out, a server in the hub's place:
    # a web page is not the hub's message nor a refusal of the device's token, and a body
    # larger than any hub's, or trickled, is not read for ever.
    import http.server
    import threading
    import time

    class InThePlace(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            kind = self.server.kind
            if kind in ("page", "refusal-page"):
                page = b"<html><body>Forfait \xc3\xa9puis\xc3\xa9 : connectez-vous</body></html>"
                self.send_response(200 if kind == "page" else 403)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
            elif kind == "endless":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                chunk = b"\0" * 1024 * 1024
                try:
                    for _ in range(200):
                        self.wfile.write(chunk)
                except OSError:
                    pass
            elif kind == "slow-head":
                # The status line and headers a byte at a time.
                try:
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n":
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.3)
                except OSError:
                    pass
            elif kind == "trickle":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                try:
                    for _ in range(1000):
                        self.wfile.write(b"V")
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    pass
            self.close_connection = True

        def log_message(self, *args):
            pass

    store = fresh(env)
    try:
        for kind, said in [
            ("page", "answered 200 in the hub's place"),
            ("refusal-page", "answered 403 in the hub's place"),
            ("endless", "larger than any hub's"),
            ("trickle", "did not come whole in time"),
            ("slow-head", "did not come whole in time"),
        ]:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), InThePlace)
            server.kind = kind
            threading.Thread(target=server.serve_forever, daemon=True).start()
            url = f"http://127.0.0.1:{server.server_address[1]}"
            started = time.monotonic()
            try:
                with pytest.raises(vigie.VigieError.Transport) as e:
                    store.sync_with(vigie.HubTransport(url, env.monitor_token, timeout=5,
                                                       exchange_timeout=2), None)
                assert said in e.value.reason, (kind, e.value.reason)
                assert "Forfait" not in e.value.reason
                # Said in the user's language, as every error is.
                french = e.value.text_in("fr")
                assert "hub unreachable" not in french and "answer" not in french, french
                assert time.monotonic() - started < 30, kind
            finally:
                server.shutdown()
                server.server_close()
    finally:
        store.close_store()


def test_a_wipe_order_the_hub_did_not_sign_wipes_nothing_and_the_hubs_own_does(env):
    # A phone that synced with its hub pinned the hub's key: a 403 with "wipe" from anything in
    # the hub's place (a network in clear, a server under its name) destroys nothing; the hub's
    # own order, signed for this device, wipes it.
    import http.server
    import json as _json
    import threading

    import os

    token = env.enrol(os.environ["VIGIE_MONITOR_USER"])
    store = synced(open_enrolled(env.store_path("wipe-order.db"), 12, token), env, token)
    child = vigie.new_child_case("CI-0770", "Awa Ouattara", vigie.Sex.FEMALE, AREA, "2026-03-02",
                                 store.user_id())
    child.estimated_age = 11
    kept = store.create_child_case(child)

    class InThePlace(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = _json.dumps({"error": "device revoked", "wipe": True,
                                "order": self.server.order}).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    try:
        for order in ["", "0" * 128, "not hex"]:
            server = http.server.HTTPServer(("127.0.0.1", 0), InThePlace)
            server.order = order
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                with pytest.raises(vigie.VigieError.NotAllowed) as e:
                    store.sync_with(vigie.HubTransport(f"http://127.0.0.1:{server.server_address[1]}",
                                                       token), None)
                assert "did not sign" in e.value.reason, e.value.reason
            finally:
                server.shutdown()
                server.server_close()
            assert store.get_child_case(kept.id).name == "Awa Ouattara"
        env.admin("device", "revoke", "--device", vigie.parse_enrolment_token(token).device_id)
        with pytest.raises(vigie.VigieError.DeviceRevoked):
            store.sync_with(vigie.HubTransport(env.hub_url, token), None)
        with pytest.raises(vigie.VigieError.ProfileWiped):
            store.get_child_case(kept.id)
    finally:
        store.close_store()


def test_a_rust_panic_becomes_an_exception_and_the_store_stays_usable(env):
    with pytest.raises(vigie.InternalError, match="boom from python"):
        vigie.debug_panic("boom from python")
    with fresh(env) as store:
        store.create_workplace(vigie.new_workplace("Atelier", "textile", vigie.Formality.FORMAL, AREA))
        with pytest.raises(vigie.InternalError):
            store.debug_panic_holding_store("boom inside the store")
        assert store.count(vigie.RecordKind.WORKPLACE) == 1


def test_a_throwing_listener_is_contained_and_its_text_printed_nowhere(env, capfd):
    class Throwing(vigie.ChangeListener):
        def on_change(self, change):
            raise RuntimeError("boom Aya Kouassi")

        def on_bulk_change(self, source, records):
            raise RuntimeError("boom Aya Kouassi")

    with fresh(env) as store:
        store.add_change_listener(Throwing())
        for _ in range(2):
            store.create_workplace(
                vigie.new_workplace("Atelier", "textile", vigie.Formality.FORMAL, AREA)
            )
        assert store.count(vigie.RecordKind.WORKPLACE) == 2
    out, err = capfd.readouterr()
    assert "Aya" not in out + err
    assert "panicked" not in err


def test_a_field_a_record_does_not_have_is_refused_not_dropped(env):
    # Kept by Python as an attribute of its own, it was sent with nothing of it: lost, unsaid.
    workplace = vigie.new_workplace("Atelier", "textile", vigie.Formality.FORMAL, AREA)
    with pytest.raises(AttributeError) as e:
        workplace.latitude = 5.78
    assert str(e.value) == "Workplace has no field 'latitude' (did you mean 'location.point'?)"
    child = vigie.new_child_case("CI-0004", "Koffi Brou", vigie.Sex.MALE, AREA, "2026-03-02",
                                 new_id())
    with pytest.raises(AttributeError) as e:
        child.hours_per_weeks = 40
    assert str(e.value) == "ChildCase has no field 'hours_per_weeks' (did you mean 'hours_per_week'?)"
    assert not hasattr(child, "hours_per_weeks")
    # Nor a variant that carries values.
    review = vigie.VisitReview.RETURN_TO_VISITOR(comment="Les âges ?")
    with pytest.raises(AttributeError):
        review.coment = "Précisez les âges"
    review.comment = "Précisez les âges"
    # Its own fields are set as before.
    child.hours_per_week = 40
    workplace.location.point = vigie.GeoPoint(latitude=5.78, longitude=-6.59)
    with fresh(env) as store:
        child.estimated_age = 12
        assert store.create_child_case(child).hours_per_week == 40
        assert store.create_workplace(workplace).location.point.latitude == 5.78


def test_a_value_of_the_wrong_type_names_its_field_and_never_the_value(env):
    # A name typed into an enum's field: the generated code echoed it in its ValueError.
    with fresh(env) as store:
        child = vigie.new_child_case("CI-0003", "Koffi Brou", vigie.Sex.MALE, AREA, "2026-03-02",
                                     store.user_id())
        child.estimated_age = 12
        child.school = "Zoumana Kwassivi"
        with pytest.raises(ValueError) as e:
            store.create_child_case(child)
        for text in (str(e.value), repr(e.value), str(e.value.args)):
            assert "Zoumana" not in text, text
        assert str(e.value) == "school: expected a SchoolStatus, not a str"
        # Nothing reachable from the exception holds the value: not its fields, not the
        # exceptions it was raised in the handling of.
        chained = e.value
        while chained is not None:
            assert "Zoumana" not in repr(vars(chained)) + repr(chained.args), chained
            chained = chained.__context__ or chained.__cause__

        def refused_with(field, value, error=ValueError):
            """What creating a case whose `field` holds `value` raises, as text."""
            bad = vigie.new_child_case("CI-0003", "Koffi Brou", vigie.Sex.MALE, AREA,
                                       "2026-03-02", store.user_id())
            bad.estimated_age = 12
            setattr(bad, field, value)
            with pytest.raises(error) as refused:
                store.create_child_case(bad)
            return str(refused.value)

        # A value another field holds too ("" is every empty string, 0 every zero): the field
        # of the type expected.
        for field, value, expected in [("school", "", "SchoolStatus"), ("status", 0, "CaseStatus")]:
            said = refused_with(field, value)
            assert said.startswith(f"{field}: expected a {expected}"), said
        # A number or a yes/no of the wrong type: named as an enum's is (a yes/no was taken
        # by its truth: "non" recorded night work).
        for field, value, said in [
            ("hours_per_week", "40", "hours_per_week: expected an int, not a str"),
            ("night_work", "non", "night_work: expected a bool, not a str"),
            ("hours_per_week", 2**40,
             "hours_per_week: an int holding a value of the wrong type or out of range"),
            # A bool is an int to Python: estimated_age = True recorded a child of 1.
            ("estimated_age", True, "estimated_age: expected an int, not a bool"),
        ]:
            refused = refused_with(field, value, vigie.WrongType)
            assert refused == said, refused
        # Inside a record inside a record: its path, as the core names fields.
        child.school = vigie.SchoolStatus.ATTENDING
        referral = vigie.new_referral(vigie.ServiceKind.EDUCATION, "École", "2026-03-03")
        referral.service = "Zoumana Kwassivi"
        key = new_id()
        child.referrals = {key: referral}
        with pytest.raises(ValueError) as e:
            store.create_child_case(child)
        assert str(e.value) == f"referrals.{key}.service: expected a ServiceKind, not a str"
        # An enum whose variants carry values, and a record, given a string.
        with pytest.raises(ValueError) as e:
            store.follow_ups_due("2026-05-01", area="Zoumana Kwassivi")
        assert str(e.value) == "area: expected an AreaFilter, not a str"
        child.referrals = {}
        child.area = "Zoumana Kwassivi"
        with pytest.raises(ValueError) as e:
            store.create_child_case(child)
        assert str(e.value) == "area: expected an Area, not a str"
        # As an argument.
        with pytest.raises(ValueError) as e:
            store.transition_case(new_id(), "Zoumana Kwassivi")
        assert "Zoumana" not in repr(e.value) and "CaseStatus" in str(e.value), str(e.value)
        assert str(e.value).startswith("status: "), str(e.value)
        # A helper's argument, a method's, a number out of range: named too.
        with pytest.raises(ValueError) as e:
            vigie.new_referral(vigie.ServiceKind.EDUCATION, "École \ud800", "2026-03-03")
        assert str(e.value).startswith("provider: a str that UTF-8 cannot write"), str(e.value)
        with pytest.raises(ValueError) as e:
            store.get_child_case("\udc00")
        assert str(e.value).startswith("id: a str that UTF-8"), str(e.value)
        with pytest.raises(ValueError) as e:
            store.search_names("Koffi", 2**32)
        assert str(e.value).startswith("limit: an int holding"), str(e.value)
        # A str of the wrong type, as an argument and in a field; a list given a str (taken
        # as its characters before).
        with pytest.raises(ValueError) as e:
            store.get_child_case(123)
        assert str(e.value) == "id: expected a str, not an int", str(e.value)
        with pytest.raises(ValueError) as e:
            vigie.new_referral(vigie.ServiceKind.EDUCATION, 12, "2026-03-03")
        assert str(e.value) == "provider: expected a str, not an int", str(e.value)
        for field, value, said in [("name", 5, "name: expected a str, not an int"),
                                   ("notes", None, "notes: expected a str, not a NoneType"),
                                   ("hazards", "heavy_loads", "hazards: expected a list, not a str"),
                                   ("hazards", [1], "hazards: expected a str, not an int"),
                                   # None, a dict (taken as its keys), a list where a map keyed
                                   # by id belongs: the field named, not only the record.
                                   ("hazards", None, "hazards: expected a list, not a NoneType"),
                                   ("tasks", {"x": 1}, "tasks: expected a list, not a dict"),
                                   ("tasks", (t for t in ["weeding"]),
                                    "tasks: expected a list, not a generator"),
                                   ("referrals", [], "referrals: expected a dict, not a list"),
                                   ("followups", None, "followups: expected a dict, not a NoneType")]:
            refused = refused_with(field, value)
            assert refused == said, refused
        # A variant holding a value of the wrong type: the type named, never the value.
        for wrong, said in [
            (vigie.FieldValue.INTEGER("Zoumana Kwassivi"), "value: expected an int, not a str"),
            (vigie.AreaFilter.COMMUNITY(["Zoumana Kwassivi"]), "area: expected a str, not a list"),
        ]:
            with pytest.raises(ValueError) as e:
                if isinstance(wrong, vigie.FieldValue):
                    store.resolve_conflict(new_id(), ["name"], wrong)
                else:
                    store.follow_ups_due("2026-05-01", area=wrong)
            assert str(e.value) == said, str(e.value)
            assert "Zoumana" not in repr(vars(e.value)) + repr(e.value.__context__), e.value
        # Text UTF-8 cannot write (an emoji cut in half): the field named, the text kept
        # nowhere (the encoder's own error held it whole).
        child.area = AREA
        child.notes = "Zoumana Kwassivi \ud83d"
        with pytest.raises(ValueError) as e:
            store.create_child_case(child)
        assert str(e.value).startswith("notes: a str that UTF-8 cannot write"), str(e.value)
        chained = e.value
        while chained is not None:
            assert "Zoumana" not in repr(vars(chained)) + repr(chained.args), chained
            chained = chained.__context__ or chained.__cause__
        assert store.count(vigie.RecordKind.CHILD_CASE) == 0


def test_a_record_made_under_anothers_id_is_said_so():
    # The hub's refusal of a copy made under the id of a record it holds names the id, in the
    # user's language (it read as damage its user could make nothing of).
    rule = ("another record holds this id at the hub: this copy is another record made under "
            "its id (give it up with discard_refused_changes, and record it again as a new one "
            "if it holds what no other record does)")
    refused = vigie.RefusedRecord(
        id="0195a1b2-0000-7000-8000-000000000001",
        reason=vigie.Refusal.DAMAGED(),
        field="id",
        rule=rule,
    )
    assert "un autre dossier porte cet identifiant" in refused.text_in("fr"), refused.text_in("fr")
    assert "another record holds this id" in refused.text_in("en"), refused.text_in("en")


def test_printed_records_show_their_fields():
    # A printed sync summary says which records were refused and why.
    refused = vigie.RefusedRecord(
        id="0195a1b2-0000-7000-8000-000000000001",
        reason=vigie.Refusal.OUT_OF_SCOPE(),
        field=None,
        rule=None,
    )
    text = repr([refused])
    assert "0195a1b2-0000-7000-8000-000000000001" in text, text
    assert "OUT_OF_SCOPE" in text, text
    # And the values an enum's variant carries (a conflict's values, an area filter).
    text = repr([vigie.FieldValue.TEXT("Champ Kouassi"), vigie.AreaFilter.COMMUNITY("CI-R1-D1-C01")])
    assert "Champ Kouassi" in text and "CI-R1-D1-C01" in text, text


def test_closing_a_closed_store_does_nothing(tmp_path):
    with vigie.open_unencrypted_store(str(tmp_path / "closed.db"), "0195a1b2-0000-7000-8000-0000000000aa", None) as store:
        store.close_store()
        store.close_store()
    try:
        store.count(vigie.RecordKind.CHILD_CASE)
        raise AssertionError("a closed store answered")
    except vigie.VigieError.Storage:
        pass


def test_a_sync_is_cancelled_from_another_thread_and_says_so(env):
    # A hub that takes the request and never answers (a link gone silent): the app's Cancel
    # button ends the session at once, told as cancelled, not as a storage fault.
    import socket
    import threading
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    transport = vigie.HubTransport(url, env.monitor_token, timeout=60)
    outcome = {}
    with open_enrolled(env.store_path("cancel.db"), 41, env.monitor_token) as phone:
        def run():
            try:
                phone.sync_with(transport, None)
            except vigie.VigieError as e:
                outcome["error"] = e

        started = time.monotonic()
        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(0.5)
        transport.abort()
        worker.join(10)
        assert not worker.is_alive() and time.monotonic() - started < 5
        error = outcome["error"]
        assert isinstance(error, vigie.VigieError.Transport), error
        assert "cancelled" in str(error), error
        # The store is whole and syncs again with a new transport.
        phone.sync_with(vigie.HubTransport(env.hub_url, env.monitor_token), None)
    silent.close()


def test_a_full_phone_says_its_storage_is_full_and_loses_nothing(tmp_path):
    # A phone whose storage filled to the last byte after its store was closed: the store does
    # not open (its write-ahead files are made at opening), and the app is told the storage is
    # full — not "disk I/O error" — so that it asks its user to free space. Then all is there.
    import os
    import subprocess

    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)],
            capture_output=True).returncode != 0:
        pytest.skip("no tmpfs can be mounted here (not root)")

    def fill():
        with open(small / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
            except OSError:
                pass

    try:
        path = str(small / "phone.db")
        user = new_id()
        with vigie.open_store(path, key(9), user, None) as store:
            child = vigie.new_child_case("CI-0100", "Aya Kouassi", vigie.Sex.FEMALE, AREA,
                                         "2026-03-02", user)
            child.estimated_age = 12
            case = store.create_child_case(child).id
        fill()
        for _ in range(2):
            with pytest.raises(vigie.VigieError.StorageFull) as e:
                vigie.open_store(path, key(9), user, None)
            assert "plein" in e.value.text_in("fr")
            assert "free some space" in e.value.text_in("en")
        os.remove(small / "filler")
        with vigie.open_store(path, key(9), user, None) as store:
            assert store.get_child_case(case).case_code == "CI-0100"
            # Full while open: a write is refused as such, nothing of it written.
            fill()
            child = vigie.new_child_case("CI-0101", "Koffi Brou", vigie.Sex.MALE, AREA,
                                         "2026-03-02", user)
            child.estimated_age = 13
            with pytest.raises(vigie.VigieError.StorageFull):
                for _ in range(400):
                    child.notes = os.urandom(8000).hex()
                    store.create_child_case(child)
            os.remove(small / "filler")
            assert store.get_child_case(case).case_code == "CI-0100"
            assert store.integrity_check()
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)


def test_a_none_where_none_is_refused_names_that_argument(env):
    # None is one object for every argument: the first argument taking it was named, though
    # it may be None (``child_case_pages(None, None)`` named the query, not the page size).
    with fresh(env, 5) as store:
        with pytest.raises(vigie.WrongType) as e:
            store.child_case_pages(None, None)
        assert str(e.value).startswith("page_size:"), str(e.value)
        with pytest.raises(vigie.WrongType) as e:
            store.search_names("Ami", 10, None, None)
        assert str(e.value).startswith("offset:"), str(e.value)
    # A list where bytes belong is named too.
    with pytest.raises(vigie.WrongType) as e:
        vigie.open_store(env.store_path("listed.db"), [0] * 32, new_id(), None)
    assert str(e.value).startswith("key:"), str(e.value)

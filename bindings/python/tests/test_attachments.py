"""Attachments through the bindings: captured from files, listed with their state, exported,
removed, and carried to the hub and to another device by ``sync_with``, on a real hub."""

import hashlib
import os
import random
import struct
import subprocess
import zlib

import pytest

import vigie
from conftest import key, open_enrolled

AREA = vigie.Area(country="CI", region="CI-R1", district="CI-R1-D1", community="CI-R1-D1-C01")


def png(width, height):
    """A real PNG image (a gradient), as a camera app might save one."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 90))
        for y in range(height)
    )

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def jpeg_size(data):
    """(width, height) of a JPEG, from its frame header."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    raise AssertionError("no frame header")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def child_case(store, monitor_id):
    case = vigie.new_child_case("CI-D1-0100", "Koffi Yao", vigie.Sex.MALE, AREA, "2026-03-02",
                                monitor_id)
    case.estimated_age = 12
    return store.create_child_case(case)


def pdf_bytes(n):
    """A scanned consent form's bytes: as incompressible as a real scan, the same each call."""
    return (b"%PDF-1.4\n" + random.Random(n).randbytes(n))[:n]


def test_captured_listed_exported_and_removed_on_the_device(env, tmp_path):
    monitor = vigie.parse_enrolment_token(env.monitor_token)
    path = env.store_path("phone.db")
    with open_enrolled(path, 40, env.monitor_token) as phone:
        case = child_case(phone, monitor.user_id)
        scan = write(tmp_path / "consent.pdf", pdf_bytes(200_000))
        note = write(tmp_path / "note.ogg", b"OggS" + bytes(range(256)) * 40)

        form = phone.add_attachment(case.id, vigie.NewAttachment(
            kind=vigie.AttachmentKind.DOCUMENT, media_type="application/pdf",
            caption="Formulaire de consentement"), str(scan))
        voice = phone.add_attachment(case.id, vigie.NewAttachment(
            kind=vigie.AttachmentKind.VOICE_NOTE, media_type="audio/ogg", caption=""), str(note))
        assert form.size == 200_000
        assert form.sha256 == hashlib.sha256(read(scan)).hexdigest()
        assert form.captured_by == monitor.user_id
        assert form.media_type == "application/pdf"

        listed = phone.attachments(case.id)
        assert [a.attachment.id for a in listed] == [form.id, voice.id]
        assert all(a.state == vigie.AttachmentState.PENDING_UPLOAD for a in listed)
        assert listed[0].attachment.caption == "Formulaire de consentement"
        assert listed[0].record_id == case.id
        state = phone.record_sync_state(case.id)
        assert state.attachments == 2 and state.attachments_pending_upload == 2
        assert state.pending_changes

        # The app's file may go: the store holds its own sealed copy.
        os.remove(scan)
        out = tmp_path / "viewer.pdf"
        phone.export_attachment(form.id, str(out))
        assert read(out) == pdf_bytes(200_000)
        # A place the app cannot write: the field and why, never the path.
        with pytest.raises(vigie.VigieError.Validation) as refused:
            phone.export_attachment(form.id, str(tmp_path / "gone" / "Aya Kouassi.pdf"))
        assert (refused.value.field, refused.value.rule) == ("path", "the directory does not exist")
        assert "Aya" not in str(refused.value)
        assert phone.read_attachment(voice.id) == read(note)
        # The sealed copy beside the store does not hold the bytes in the clear.
        sealed = path + ".attachments"
        assert os.listdir(sealed)
        clear = pdf_bytes(200_000)[5000:5064]
        assert not any(clear in read(os.path.join(sealed, f)) for f in os.listdir(sealed))

        phone.remove_attachment(case.id, voice.id)
        assert [a.attachment.id for a in phone.attachments(case.id)] == [form.id]
        with pytest.raises(vigie.VigieError.NotFound):
            phone.read_attachment(voice.id)


def test_bad_captures_get_typed_errors_and_store_nothing(env, tmp_path):
    monitor = vigie.parse_enrolment_token(env.monitor_token)
    with open_enrolled(env.store_path("phone.db"), 41, env.monitor_token) as phone:
        case = child_case(phone, monitor.user_id)
        limit = phone.attachment_limits().max_file_bytes
        big = write(tmp_path / "big.pdf", pdf_bytes(limit + 1))
        document = vigie.NewAttachment(kind=vigie.AttachmentKind.DOCUMENT,
                                       media_type="application/pdf", caption="")
        with pytest.raises(vigie.VigieError.OverLimit) as e:
            phone.add_attachment(case.id, document, str(big))
        assert (e.value.limit_of, e.value.size, e.value.limit) == ("file_bytes", limit + 1, limit)
        assert str(limit) in str(e.value)
        # The limit is named in the user's words, not by its code.
        french = e.value.text_in("fr")
        assert "taille d'une pièce jointe" in french and "file_bytes" not in french, french
        assert "\u202f" in french, french  # 10 485 760, as a French reader writes it

        with pytest.raises(vigie.VigieError.Validation) as e:
            phone.add_attachment(case.id, vigie.NewAttachment(
                kind=vigie.AttachmentKind.PHOTO, media_type="application/pdf", caption=""),
                str(big))
        assert e.value.field == "media_type"
        with pytest.raises(vigie.VigieError.Validation) as e:
            phone.add_attachment(case.id, vigie.NewAttachment(
                kind=vigie.AttachmentKind.PHOTO, media_type="image/png", caption=""),
                str(write(tmp_path / "fake.png", b"not an image at all")))
        assert e.value.field == "source"
        with pytest.raises(vigie.VigieError.Validation) as e:
            phone.add_attachment(case.id, document, str(write(tmp_path / "empty.pdf", b"")))
        assert e.value.field == "source"
        with pytest.raises(vigie.VigieError.Validation) as e:
            phone.add_attachment(case.id, document, str(tmp_path / "missing.pdf"))
        assert e.value.field == "path"
        # A directory is no file either (not a storage failure).
        with pytest.raises(vigie.VigieError.Validation) as e:
            phone.add_attachment(case.id, document, str(tmp_path))
        assert e.value.field == "path"
        with pytest.raises(vigie.VigieError.Validation) as e:
            phone.add_attachment(case.id, vigie.NewAttachment(
                kind=vigie.AttachmentKind.DOCUMENT, media_type="application/pdf",
                caption="deux\nlignes"), str(write(tmp_path / "ok.pdf", pdf_bytes(1000))))
        assert e.value.field == "attachments.caption"
        with pytest.raises(vigie.VigieError.Validation) as e:
            phone.add_attachment(case.id, vigie.NewAttachment(
                kind=vigie.AttachmentKind.DOCUMENT, media_type="application/pdf",
                caption="x" * 501), str(write(tmp_path / "ok.pdf", pdf_bytes(1000))))
        assert e.value.field == "attachments.caption"
        with pytest.raises(vigie.VigieError.Validation) as e:
            phone.add_attachment("not-an-id", document, str(tmp_path / "ok.pdf"))
        assert e.value.field == "record_id"
        with pytest.raises(vigie.VigieError.NotFound):
            phone.add_attachment(vigie.parse_enrolment_token(env.monitor_token).device_id,
                                 document, str(tmp_path / "ok.pdf"))

        assert phone.attachments(case.id) == []
        assert not phone.record_sync_state(case.id).attachments


def test_attachments_travel_through_the_hub_under_the_download_policy(env, tmp_path):
    monitor = vigie.parse_enrolment_token(env.monitor_token)
    with open_enrolled(env.store_path("phone.db"), 42, env.monitor_token) as phone, \
            open_enrolled(env.store_path("tablet.db"), 43, env.supervisor_token) as tablet:
        to_hub = vigie.HubTransport(env.hub_url, env.monitor_token)
        phone.sync_with(to_hub)
        # The hub publishes its limits (scripts/test-bindings.sh starts it with its own).
        limits = phone.attachment_limits()
        assert (limits.max_file_bytes, limits.photo_max_side) == (3_000_000, 800)

        case = child_case(phone, monitor.user_id)
        photo = phone.add_attachment(case.id, vigie.NewAttachment(
            kind=vigie.AttachmentKind.PHOTO, media_type="image/png",
            caption="Charge portée"), str(write(tmp_path / "camera.png", png(1200, 600))))
        # Re-encoded as JPEG, downscaled to the hub's longest side.
        assert photo.media_type == "image/jpeg"
        assert jpeg_size(phone.read_attachment(photo.id)) == (800, 400)
        form = phone.add_attachment(case.id, vigie.NewAttachment(
            kind=vigie.AttachmentKind.DOCUMENT, media_type="application/pdf", caption=""),
            str(write(tmp_path / "consent.pdf", pdf_bytes(700_000))))

        sent = phone.sync_with(to_hub)
        assert sent.accepted == 1 and sent.refused == []
        assert sent.attachments_uploaded == 2 and sent.attachments_failed == []
        assert {a.state for a in phone.attachments(case.id)} == {vigie.AttachmentState.UPLOADED}
        assert phone.record_sync_state(case.id) == vigie.RecordSyncState(
            pending_changes=False, attachments=2, attachments_pending_upload=0,
            attachments_not_downloaded=0, attachments_failed=0)

        # The supervisor's tablet, on demand: the manifest arrives with the case, the bytes
        # only when asked for.
        on_demand = vigie.AttachmentSync(policy=vigie.DownloadPolicy.ON_DEMAND, unmetered=True)
        to_hub_tablet = vigie.HubTransport(env.hub_url, env.supervisor_token)
        pulled = tablet.sync_with(to_hub_tablet, None, on_demand)
        assert pulled.attachments_downloaded == 0
        listed = tablet.attachments(case.id)
        assert [(a.attachment.id, a.state) for a in listed] == [
            (photo.id, vigie.AttachmentState.NOT_DOWNLOADED),
            (form.id, vigie.AttachmentState.NOT_DOWNLOADED)]
        assert listed[0].attachment.caption == "Charge portée"
        assert tablet.record_sync_state(case.id).attachments_not_downloaded == 2
        with pytest.raises(vigie.VigieError.AttachmentNotHere) as e:
            tablet.export_attachment(form.id, str(tmp_path / "form.pdf"))
        assert e.value.state == vigie.AttachmentState.NOT_DOWNLOADED

        tablet.request_attachment(form.id)
        asked = tablet.sync_with(to_hub_tablet, None, on_demand)
        assert asked.attachments_downloaded == 1
        tablet.export_attachment(form.id, str(tmp_path / "form.pdf"))
        assert read(tmp_path / "form.pdf") == pdf_bytes(700_000)

        # Wi-Fi only, on a metered link: nothing; on Wi-Fi: the rest.
        metered = tablet.sync_with(to_hub_tablet, None, vigie.AttachmentSync(
            policy=vigie.DownloadPolicy.WIFI_ONLY, unmetered=False))
        assert metered.attachments_downloaded == 0
        wifi = tablet.sync_with(to_hub_tablet, None, vigie.AttachmentSync(
            policy=vigie.DownloadPolicy.WIFI_ONLY, unmetered=True))
        assert wifi.attachments_downloaded == 1
        assert tablet.read_attachment(photo.id) == phone.read_attachment(photo.id)
        assert {a.state for a in tablet.attachments(case.id)} == {vigie.AttachmentState.AVAILABLE}

        # A removal travels with the record.
        phone.remove_attachment(case.id, form.id)
        phone.sync_with(to_hub)
        tablet.sync_with(to_hub_tablet)
        assert [a.attachment.id for a in tablet.attachments(case.id)] == [photo.id]
        with pytest.raises(vigie.VigieError.NotFound):
            tablet.read_attachment(form.id)


class CutAttachments(vigie.HubTransport):
    """Records go through; the attachments' exchange fails after `chunks` chunks."""

    def __init__(self, hub_url, token, chunks):
        super().__init__(hub_url, token)
        self.chunks = chunks

    def exchange_attachment(self, request):
        if self.chunks == 0:
            raise vigie.TransportError.Unreachable(reason="link lost")
        self.chunks -= 1
        return super().exchange_attachment(request)


def test_an_upload_cut_mid_way_resumes_at_the_next_session(env, tmp_path):
    monitor = vigie.parse_enrolment_token(env.monitor_token)
    with open_enrolled(env.store_path("phone.db"), 44, env.monitor_token) as phone:
        case = child_case(phone, monitor.user_id)
        form = phone.add_attachment(case.id, vigie.NewAttachment(
            kind=vigie.AttachmentKind.DOCUMENT, media_type="application/pdf", caption=""),
            str(write(tmp_path / "scan.pdf", pdf_bytes(1_000_000))))

        progress = []

        class Progress(vigie.SyncProgressListener):
            def on_progress(self, summary):
                progress.append(summary)

        with pytest.raises(vigie.VigieError.Transport) as e:
            phone.sync_with(CutAttachments(env.hub_url, env.monitor_token, 2), Progress())
        assert "link lost" in e.value.reason
        # The record reached the hub; the upload stopped part way, and says how far.
        info = phone.attachments(case.id)[0]
        assert info.state == vigie.AttachmentState.PENDING_UPLOAD
        assert 0 < info.transferred < 1_000_000
        assert not phone.record_sync_state(case.id).pending_changes
        assert progress and progress[-1].round_trips >= 3

        resumed = phone.sync_with(vigie.HubTransport(env.hub_url, env.monitor_token))
        assert resumed.attachments_uploaded == 1
        # Resumed, not restarted: the chunks already held are not sent again.
        assert resumed.bytes_sent < 1_000_000 - info.transferred + 200_000
        assert phone.attachments(case.id)[0].state == vigie.AttachmentState.UPLOADED
        assert form.id == phone.attachments(case.id)[0].attachment.id


class OwnHub:
    """A hub of this test's own (the real binary), to restart with other limits."""

    def __init__(self, env, data):
        self.bin, self.data, self.process = os.environ["VIGIE_BIN"], str(data), None
        self._admin("reference", "publish", "reference/areas-CI.json")
        user = self._admin("user", "add", "--name", "Awa Koné", "--role", "community-monitor",
                           "--area", "CI-R1-D1-C01")
        self.token = self._admin("device", "enrol", "--user", user)

    def _admin(self, *args):
        out = subprocess.run([self.bin, *args, "--data", self.data], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()

    def start(self, *limits):
        self.stop()
        self.process = subprocess.Popen(
            [self.bin, "serve", "--data", self.data, "--listen", "127.0.0.1:0", *limits],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline().strip()
        assert line.startswith("vigie hub listening on "), line
        self.url = line.removeprefix("vigie hub listening on ")

    def stop(self):
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None


def test_an_attachment_over_a_lowered_hub_limit_fails_with_its_figures(env, tmp_path):
    hub = OwnHub(env, tmp_path / "hub")
    try:
        hub.start()
        me = vigie.parse_enrolment_token(hub.token)
        with open_enrolled(env.store_path("phone.db"), 45, hub.token) as phone:
            phone.sync_with(vigie.HubTransport(hub.url, hub.token))
            case = child_case(phone, me.user_id)
            form = phone.add_attachment(case.id, vigie.NewAttachment(
                kind=vigie.AttachmentKind.DOCUMENT, media_type="application/pdf", caption=""),
                str(write(tmp_path / "scan.pdf", pdf_bytes(300_000))))
            # The record and its manifest reach the hub; the bytes do not (the link drops).
            with pytest.raises(vigie.VigieError.Transport):
                phone.sync_with(CutAttachments(hub.url, hub.token, 0))
            assert not phone.record_sync_state(case.id).pending_changes

            # The hub comes back with a lower limit: the chunk is answered 413, which the
            # transport hands over as the refusal with its figures.
            hub.start("--max-attachment-bytes", "100000")
            summary = phone.sync_with(vigie.HubTransport(hub.url, hub.token))
            assert [f.id for f in summary.attachments_failed] == [form.id]
            reason = summary.attachments_failed[0].reason
            assert reason.is_file_too_large() and (reason.size, reason.limit) == (300_000, 100_000)
            info = phone.attachments(case.id)[0]
            assert info.state == vigie.AttachmentState.FAILED and info.failure
            assert phone.record_sync_state(case.id).attachments_failed == 1
            assert phone.attachment_limits().max_file_bytes == 100_000
            # Asked for again while the limit still refuses it: said why.
            with pytest.raises(vigie.VigieError.OverLimit) as e:
                phone.request_attachment(form.id)
            assert (e.value.size, e.value.limit) == (300_000, 100_000)

            # The operator undoes the mistake: the next sync hears the limits and uploads it.
            hub.start()
            summary = phone.sync_with(vigie.HubTransport(hub.url, hub.token))
            assert summary.attachments_uploaded == 1, summary
            assert phone.attachments(case.id)[0].state == vigie.AttachmentState.UPLOADED
    finally:
        hub.stop()

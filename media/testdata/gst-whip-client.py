#!/usr/bin/python3
"""A WHIP publisher built on GStreamer's webrtcbin, for the GStreamer interop test.

It does what Meetecho's simple-whip-client does in its non-trickle mode (-n): build
"webrtcbin name=sendonly bundle-policy=max-bundle" fed by the given video and audio
pipelines, wait for ICE gathering to complete, add the candidates to the offer, POST
it to the WHIP endpoint with a Bearer token, apply the answer (and its candidates),
and DELETE the resource on SIGINT/SIGTERM. The HTTP part uses Python's urllib instead
of libsoup: Debian bookworm's simple-whip-client links libsoup2 while libnice links
libsoup3 (through gupnp-igd), and the process aborts ("libsoup2 symbols detected")
as soon as webrtcbin loads.

Every line it prints starts with "whip:" and is one event the test can wait for:
"whip: POST 201 <resource>", "whip: connection-state connected", "whip: deleted 200".

Usage: gst-whip-client.py -u URL [-t TOKEN] [-V VIDEO_PIPELINE] [-A AUDIO_PIPELINE]
       gst-whip-client.py --check [-V ...] [-A ...]  (exit 0 when the pipeline can be built)
"""

import argparse
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstSdp", "1.0")
    gi.require_version("GstWebRTC", "1.0")
    from gi.repository import GLib, Gst, GstSdp, GstWebRTC
except (ImportError, ValueError) as e:
    print("whip: missing GStreamer's Python bindings (apt-get install python3-gi "
          "gir1.2-gst-plugins-bad-1.0): %s" % e, flush=True)
    sys.exit(2)


def log(*parts):
    print("whip:", *parts, flush=True)


class Client:
    def __init__(self, args):
        self.args = args
        self.loop = GLib.MainLoop()
        self.resource = None
        self.candidates = []  # of the first m-line: the offer bundles everything
        self.offer = None
        self.gathered = False
        self.posted = False
        self.exit_code = 0
        desc = "webrtcbin name=sendonly bundle-policy=max-bundle"
        if args.video:
            desc += " " + args.video + " ! sendonly."
        if args.audio:
            desc += " " + args.audio + " ! sendonly."
        self.pipeline = Gst.parse_launch(desc)
        self.pc = self.pipeline.get_by_name("sendonly")
        self.pc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.pc.connect("on-ice-candidate", self.on_ice_candidate)
        self.pc.connect("notify::ice-gathering-state", self.on_gathering_state)
        self.pc.connect("notify::connection-state", self.on_connection_state)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)

    # webrtcbin emits its signals on its own threads: each handler hands the work to
    # the main loop, which owns every field.

    def on_negotiation_needed(self, _pc):
        promise = Gst.Promise.new_with_change_func(self.on_offer, None)
        self.pc.emit("create-offer", None, promise)

    def on_offer(self, promise, _data):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        self.pc.emit("set-local-description", offer, Gst.Promise.new())
        GLib.idle_add(self.set_offer, offer.sdp.as_text())

    def set_offer(self, sdp):
        self.offer = sdp
        self.maybe_post()
        return False

    def on_ice_candidate(self, _pc, mline, candidate):
        if mline == 0 and candidate.split(" ")[1] == "1":
            GLib.idle_add(self.add_candidate, candidate)

    def add_candidate(self, candidate):
        self.candidates.append(candidate)
        return False

    def on_gathering_state(self, pc, _pspec):
        state = pc.get_property("ice-gathering-state")
        log("ice-gathering-state", state.value_nick)
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self.set_gathered)

    def set_gathered(self):
        self.gathered = True
        self.maybe_post()
        return False

    def on_connection_state(self, pc, _pspec):
        state = pc.get_property("connection-state")
        log("connection-state", state.value_nick)
        if state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            GLib.idle_add(self.stop, 1)

    def on_error(self, _bus, msg):
        err, debug = msg.parse_error()
        log("pipeline error", err.message, debug)
        self.stop(1)

    def maybe_post(self):
        if self.posted or self.offer is None or not self.gathered:
            return
        self.posted = True
        # Non-trickle: the candidates go in every m-section of the offer.
        attrs = "".join("a=%s\r\n" % c for c in self.candidates) + "a=end-of-candidates\r\n"
        sections = self.offer.replace("\r\nm=", "\r\n\x00m=").split("\x00")
        sdp = sections[0] + "".join(s + attrs for s in sections[1:])
        log("offer", len(self.candidates), "candidates:", " | ".join(self.candidates))
        req = urllib.request.Request(self.args.url, data=sdp.encode(), method="POST")
        req.add_header("Content-Type", "application/sdp")
        if self.args.token:
            req.add_header("Authorization", "Bearer " + self.args.token)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, answer = resp.status, resp.read().decode()
                location = resp.headers.get("Location")
        except urllib.error.HTTPError as e:
            log("POST", e.code, e.read().decode().strip())
            self.stop(1)
            return
        if location is None:
            log("POST", status, "without a Location")
            self.stop(1)
            return
        self.resource = urllib.parse.urljoin(self.args.url, location)
        log("POST", status, self.resource)
        for line in answer.split("\r\n"):
            if line.startswith(("m=", "a=rtpmap:", "a=fmtp:", "a=sendonly", "a=recvonly", "a=inactive")):
                log("answer", line)
        res, msg = GstSdp.SDPMessage.new_from_text(answer)
        if res != GstSdp.SDPResult.OK:
            log("bad answer", answer)
            self.stop(1)
            return
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.pc.emit("set-remote-description", desc, Gst.Promise.new())
        # The answer's candidates, of its first m-section (bundled), as remote ones.
        sections = 0
        for line in answer.split("\r\n"):
            if line.startswith("m="):
                sections += 1
            elif sections == 1 and line.startswith("a=candidate:"):
                self.pc.emit("add-ice-candidate", 0, line[2:])

    def stop(self, code=0):
        if code:
            self.exit_code = code
        if self.resource is not None:
            req = urllib.request.Request(self.resource, method="DELETE")
            if self.args.token:
                req.add_header("Authorization", "Bearer " + self.args.token)
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    log("deleted", resp.status)
            except (urllib.error.URLError, OSError) as e:
                log("DELETE failed", e)
            self.resource = None
        self.loop.quit()
        return False

    def run(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, self.stop)
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            log("pipeline does not start")
            return 1
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)
        return self.exit_code


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-u", "--url")
    p.add_argument("-t", "--token")
    p.add_argument("-V", "--video")
    p.add_argument("-A", "--audio")
    p.add_argument("--check", action="store_true", help="only build the pipeline: are the plugins there?")
    args = p.parse_args()
    if not args.video and not args.audio:
        p.error("give a video (-V) or an audio (-A) pipeline, or both")
    if not args.url and not args.check:
        p.error("give the WHIP endpoint's URL (-u)")
    Gst.init(None)
    try:
        client = Client(args)
    except GLib.Error as e:
        log("cannot build the pipeline:", e.message)
        sys.exit(2)
    if args.check:
        log("pipeline ok")
        sys.exit(0)
    sys.exit(client.run())


if __name__ == "__main__":
    main()

package web_test

// The browser test: headless Chromium drives the host and viewer pages against a real
// gateway (embedded NATS) and the real media server, in process.
//
// Chromium leaves loopback out of its ICE candidates, and the machine's real interface
// must never be a target, so the test runs itself again inside a network namespace with
// only lo and a veth pair on private addresses that route nowhere else
// (internal/netnstest). The child runs the servers and the browser; the parent only
// sets up and removes the namespace.
//
// It lives in package web_test so that it can import gateway and media (which the web
// package itself must not depend on) without an import cycle.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/gateway"
	"github.com/liveroom/liveroom/internal/embednats"
	"github.com/liveroom/liveroom/internal/netnstest"
	"github.com/liveroom/liveroom/media"
	"github.com/liveroom/liveroom/web"
)

const (
	browserEnv    = "LIVEROOM_BROWSER" // the browser binary, found by the parent
	requireEnv    = "LIVEROOM_REQUIRE_BROWSER"
	screenshotEnv = "LIVEROOM_SCREENSHOTS" // a folder: save a screenshot of each page there
)

func TestBrowser(t *testing.T) {
	if netnstest.InChild(t) {
		runBrowser(t)
		return
	}
	required := os.Getenv(requireEnv) != ""
	skip := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if required {
			t.Fatalf("%s (%s is set, so this is a failure)", msg, requireEnv)
		}
		t.Skipf("%s; set %s=1 to make this a failure", msg, requireEnv)
	}
	browser := findBrowser()
	if browser == "" {
		skip("browser test skipped: no chromium installed (apt-get install chromium iproute2)")
	}
	if why := netnstest.Unavailable(); why != "" {
		skip("browser test skipped: %s", why)
	}
	netnstest.Run(t, 3*time.Minute, browserEnv+"="+browser)
}

// findBrowser returns the path of an installed Chromium, or "".
func findBrowser() string {
	if p := os.Getenv(browserEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// stack is everything the pages talk to, in this process: one gateway (and media
// server) behind two HTTP listeners, one for the host's page and one for the viewer's,
// so that the test can cut the viewer's connections alone.
type stack struct {
	hostURL, viewerURL string
	viewerLn           *dropListener
	secret             []byte
}

func startStack(t *testing.T) *stack {
	t.Helper()
	secret := []byte("browser-test-secret")
	ns := embednats.Test(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(gateway.Config{Secret: secret, AllowAnonymous: true}, nc, reg)
	if err != nil {
		t.Fatal(err)
	}
	// Media offers its ICE candidates on 127.0.0.1 (listed explicitly: Pion leaves
	// loopback out otherwise); the browser reaches it from its veth address.
	ms, err := media.New(media.Config{Secret: secret, AllowAnonymous: true, ICEAddresses: []string{"127.0.0.1"}}, nc, reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", gw.Handler())
	mux.Handle("/whip/", ms.Handler())
	mux.Handle("/whep/", ms.Handler())
	mux.Handle("/", web.Handler())
	// On 127.0.0.1: the pages need a secure context for getUserMedia, and
	// http://127.0.0.1 is one.
	serve := func() (*httptest.Server, *dropListener) {
		srv := httptest.NewUnstartedServer(mux)
		ln := &dropListener{Listener: srv.Listener, conns: map[net.Conn]struct{}{}}
		srv.Listener = ln
		srv.Start()
		return srv, ln
	}
	hostSrv, _ := serve()
	viewerSrv, viewerLn := serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ms.Close()
		_ = gw.Shutdown(ctx)
		hostSrv.Close()
		viewerSrv.Close()
	})
	return &stack{hostURL: hostSrv.URL, viewerURL: viewerSrv.URL, viewerLn: viewerLn, secret: secret}
}

func (s *stack) token(t *testing.T, user string, role auth.Role, room string) string {
	t.Helper()
	tok, err := auth.Mint(s.secret, auth.Claims{UserID: user, Name: user, Role: role, Rooms: []string{room}, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// runBrowser is the test proper, inside the namespace.
func runBrowser(t *testing.T) {
	st := startStack(t)
	const room = "browser-test"
	hostURL := st.hostURL + "/host/" + room + "?token=" + st.token(t, "host1", auth.RoleHost, room)
	viewerURL := st.viewerURL + "/r/" + room + "?token=" + st.token(t, "viewer1", auth.RoleViewer, room)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(os.Getenv(browserEnv)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		// Real host candidates (10.203.0.2) instead of mDNS names on the viewer page,
		// which has no camera permission.
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Two tabs are open at once: keep the one not in front running at full speed.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	// The first Do on a context starts the browser (or the tab) for that context's
	// whole life, so it gets no deadline; the steps below run on children with one.
	hostTab, cancelHost := chromedp.NewContext(allocCtx)
	defer cancelHost()
	if err := chromedp.Do(hostTab); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	viewerTab, cancelViewer := chromedp.NewContext(hostTab)
	defer cancelViewer()
	if err := chromedp.Do(viewerTab); err != nil {
		t.Fatalf("opening a second tab: %v", err)
	}
	host, cancelH := context.WithTimeout(hostTab, 2*time.Minute)
	defer cancelH()
	viewer, cancelV := context.WithTimeout(viewerTab, 2*time.Minute)
	defer cancelV()

	start := time.Now()
	step := func(name string, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			// Show what each page shows, to tell which side is wrong.
			for tab, tctx := range map[string]context.Context{"host": hostTab, "viewer": viewerTab} {
				dctx, cancel := context.WithTimeout(tctx, 5*time.Second)
				text, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`document.body.innerText + "\n[video] " + (() => { const v = document.querySelector("video"); const s = v && v.srcObject; return s ? JSON.stringify({w: v.videoWidth, t: v.currentTime, ready: v.readyState, paused: v.paused, tracks: s.getTracks().map((t) => [t.kind, t.readyState, t.muted]), restarts: v.dataset.restarts}) : "no stream"; })()`))
				cancel()
				t.Logf("%s page text:\n%s", tab, text)
			}
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%-32s ok at %v", name, time.Since(start).Round(time.Millisecond))
	}
	// poll waits, in the page, until expr is truthy: every wait below is an event in
	// the page, none is a sleep. The run's deadline bounds them all.
	poll := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0))
	}
	connected := poll(`document.getElementById("conn").dataset.state === "online"`)
	say := func(text string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(chromedp.SendKeys(chromedp.ID("text"), text), chromedp.Click(chromedp.ID("send-btn")))
	}

	step("host page connects", host,
		chromedp.EmulateViewport(1280, 720),
		chromedp.Navigate(hostURL),
		connected)
	step("viewer page connects", viewer,
		chromedp.EmulateViewport(390, 760),
		chromedp.Navigate(viewerURL),
		connected)

	// Video: the host goes live over WHIP; the viewer learns it from the room's live
	// state, plays over WHEP, and decodes frames that keep coming.
	step("host goes live", host,
		chromedp.Click(chromedp.ID("golive")),
		poll(`document.getElementById("live").dataset.state === "live"`))
	step("viewer sees the room live", viewer, poll(`document.getElementById("live").dataset.state === "live"`))
	const video = `document.getElementById("video")`
	step("viewer decodes video", viewer,
		poll(video+`.videoWidth > 0 && `+video+`.currentTime > 0 && `+video+`.getVideoPlaybackQuality().totalVideoFrames > 0`))
	frames, err := chromedp.Run(viewer, chromedp.Evaluate[int](video+`.getVideoPlaybackQuality().totalVideoFrames`))
	if err != nil {
		t.Fatal(err)
	}
	played, err := chromedp.Run(viewer, chromedp.Evaluate[float64](video+`.currentTime`))
	if err != nil {
		t.Fatal(err)
	}
	step("viewer's video advances", viewer,
		poll(fmt.Sprintf(`%s.getVideoPlaybackQuality().totalVideoFrames > %d + 10 && %s.currentTime > %g`, video, frames, video, played)))
	width, _ := chromedp.Run(viewer, chromedp.Evaluate[int](video+`.videoWidth`))
	height, _ := chromedp.Run(viewer, chromedp.Evaluate[int](video+`.videoHeight`))
	t.Logf("viewer video %dx%d, %d frames decoded at the first check", width, height, frames)
	// The page restarts a WHEP session whose track gets no packets for 3 s, or that
	// lacks a track the room has: a safety net that must not have been needed. Every
	// track starts within about one keyframe request of the viewer's connection.
	noRestarts := func(name string, ctx context.Context) {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify([`+video+`.dataset.restarts || "0", `+video+`.dataset.trackRestarts || "0"])`))
		if err != nil {
			t.Fatal(err)
		}
		if n != `["0","0"]` {
			t.Errorf("%s restarted its WHEP session [for lack of packets, for a missing track]: %s", name, n)
		}
	}
	noRestarts("viewer", viewer)

	// Chat both ways.
	step("viewer sends chat", viewer, say("hello from the viewer"))
	step("host sees the viewer's line", host, poll(hasLine("hello from the viewer")))
	step("host sends chat", host, say("welcome!"))
	step("viewer sees the host's line", viewer, poll(hasLine("welcome!")))

	// Cheers: three taps, coalesced by the page into one command, reach the host's
	// total; the online count reaches 2 (host and viewer).
	step("viewer cheers three times", viewer,
		chromedp.Click(chromedp.ID("cheer")), chromedp.Click(chromedp.ID("cheer")), chromedp.Click(chromedp.ID("cheer")))
	step("host sees the cheer total", host, poll(`document.getElementById("cheers").textContent === "3"`))
	step("host sees 2 online", host, poll(`document.getElementById("online-n").textContent === "2"`))

	// Pin a flash-sale product: it shows on the viewer's page, and Buy wins a unit.
	step("host pins a product", host,
		chromedp.SendKeys(chromedp.ID("pin-title"), "Travel mug"),
		chromedp.SendKeys(chromedp.ID("pin-price"), "25"),
		chromedp.SendKeys(chromedp.ID("pin-id"), "mug1"),
		chromedp.SendKeys(chromedp.ID("pin-sale"), "5"),
		chromedp.Click(chromedp.ID("pin-btn")))
	step("viewer sees the pin", viewer,
		poll(`!document.getElementById("product").hidden && document.getElementById("product-title").textContent === "Travel mug" && !document.getElementById("buy").hidden`))
	step("viewer buys", viewer,
		chromedp.Click(chromedp.ID("buy")),
		poll(`document.getElementById("product-note").textContent.startsWith("You got one")`))

	// Moderation: the host deletes the viewer's line; it is struck out on both pages.
	const viewerLine = `[...document.querySelectorAll("#lines li")].find((li) => li.querySelector(".text").textContent === "hello from the viewer")`
	step("host deletes the viewer's line", host,
		chromedp.Evaluate[chromedp.Void](viewerLine+`.querySelector("button.mod").click()`),
		poll(`document.querySelector("#lines li.removed") !== null`))
	step("viewer sees the line removed", viewer, poll(`document.querySelector("#lines li.removed") !== null`))

	// The network drops the viewer's connection (1006): its client reconnects, resends
	// the line typed while offline (same cid), rejoins with `since` and recovers the
	// host's line sent meanwhile, showing each line exactly once.
	st.viewerLn.dropAll()
	step("viewer notices the drop", viewer, poll(`document.getElementById("conn").dataset.drops === "1"`))
	step("viewer sends while offline", viewer, say("typed while offline"))
	step("host sends during the drop", host, say("did you miss me?"))
	step("viewer reconnects", viewer, poll(`document.getElementById("conn").dataset.state === "online"`))
	step("host gets the resent line", host, poll(countLine("typed while offline")+" === 1"))
	step("viewer resumes chat once", viewer, poll(countLine("did you miss me?")+" === 1"))

	// A guest (no token) watches and reads: history from the join snapshot, the video,
	// the pin; chat and buying are disabled.
	guestTab, cancelGuest := chromedp.NewContext(hostTab)
	defer cancelGuest()
	if err := chromedp.Do(guestTab); err != nil {
		t.Fatalf("opening a third tab: %v", err)
	}
	guest, cancelG := context.WithTimeout(guestTab, time.Minute)
	defer cancelG()
	step("guest page connects", guest,
		chromedp.EmulateViewport(390, 760),
		chromedp.Navigate(st.viewerURL+"/r/"+room),
		connected)
	step("guest gets the chat history", guest, poll(hasLine("welcome!")+` && `+hasLine("typed while offline")))
	step("guest sees the pin, cannot chat or buy", guest,
		poll(`document.getElementById("product-title").textContent === "Travel mug" && document.getElementById("buy").disabled && document.getElementById("text").disabled`))
	step("guest decodes video", guest, poll(video+`.videoWidth > 0 && `+video+`.currentTime > 0`))
	noRestarts("guest", guest)

	if dir := os.Getenv(screenshotEnv); dir != "" {
		step("landing page", guest, chromedp.EmulateViewport(800, 600), chromedp.Navigate(st.viewerURL+"/"), poll(`document.readyState === "complete"`))
		for name, ctx := range map[string]context.Context{"host": host, "viewer": viewer, "landing": guest} {
			png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatalf("screenshot %s: %v", name, err)
			}
			if err := os.WriteFile(filepath.Join(dir, "liveroom-"+name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// The host page on a phone, too.
		step("host at phone size", host, chromedp.EmulateViewport(390, 760))
		png, err := chromedp.Run(host, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot host-phone: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "liveroom-host-phone.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		step("host at desktop size", host, chromedp.EmulateViewport(1280, 720))
	}

	// The host ends the broadcast: the viewer's page goes offline.
	step("host ends", host, chromedp.Click(chromedp.ID("end")))
	step("viewer sees the room offline", viewer, poll(`document.getElementById("live").dataset.state === "offline"`))

	// A ban closes the viewer's connection with 4004, which the client does not
	// reconnect after: its status is "closed", not "reconnecting".
	const offlineLine = `[...document.querySelectorAll("#lines li")].find((li) => li.querySelector(".text").textContent === "typed while offline")`
	step("host bans the viewer", host,
		chromedp.Evaluate[chromedp.Void](offlineLine+`.querySelector("button.mod:last-child").click()`),
		poll(`[...document.querySelectorAll("#lines li.sys")].some((e) => e.textContent === "banned: viewer1")`))
	step("viewer is closed, not reconnecting", viewer,
		poll(`document.getElementById("conn").dataset.state === "closed" && document.getElementById("conn").textContent.includes("banned")`))
}

// hasLine is a page expression: is there a chat line with exactly this text?
func hasLine(text string) string { return countLine(text) + " > 0" }

// countLine is a page expression: how many chat lines have exactly this text?
func countLine(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#lines li .text")].filter((e) => e.textContent === %q).length`, text)
}

// dropListener remembers its connections so that the test can cut them all, WebSockets
// included (httptest's CloseClientConnections forgets hijacked connections).
type dropListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (l *dropListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
	}
	return c, err
}

func (l *dropListener) dropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.Close()
	}
	clear(l.conns)
}

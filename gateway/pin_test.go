package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/fanout"
)

func product(id string, stock int) map[string]any {
	return map[string]any{"id": id, "title": "丝巾 " + id, "price": 99.5, "image": "https://img.example/" + id + ".jpg", "stock": stock,
		"flash_sale": map[string]any{"stock": 100, "starts_at": 1764050000000, "per_user_limit": 1}}
}

func pinVersion(t testing.TB, f rawFrame) uint64 {
	t.Helper()
	if f.Error != nil {
		t.Fatalf("pin: %v", f.Error)
	}
	var res pinResult
	if err := json.Unmarshal(f.Result, &res); err != nil || res.Version == 0 {
		t.Fatalf("pin result %s", f.Result)
	}
	return res.Version
}

// The host pins on one gateway; a viewer joining another gateway afterwards gets the pin
// in its join reply; viewers already in the room get every version. A viewer cannot
// pin; the HTTP API needs the key.
func TestPinSnapshotHostOnlyAndAPI(t *testing.T) {
	ns := startNATS(t)
	a := startGateway(t, ns, Config{APIKey: "k3y"})
	b := startGateway(t, ns, Config{APIKey: "k3y"})
	const room = "shop"
	host := mustDialState(t, a.url)
	host.join(room, mintToken(t, "h1", auth.RoleHost, []string{room}, time.Hour))
	early := mustDialState(t, b.url)
	early.join(room, mintToken(t, "v0", auth.RoleViewer, []string{room}, time.Hour))

	v1 := pinVersion(t, host.mustCall(map[string]any{"cmd": "pin", "room": room, "product": product("p1", 10)}))
	if ev := early.waitState("pin", func(ev stateEvent) bool { return ev.Version >= v1 }); ev.Version != v1 || !strings.Contains(string(ev.Product), `"id":"p1"`) {
		t.Fatalf("early viewer got pin %+v, want version %d of p1", ev, v1)
	}

	late := mustDialState(t, b.url)
	snap := late.join(room, mintToken(t, "v1", auth.RoleViewer, []string{room}, time.Hour))
	if snap.Pin == nil || snap.Pin.Version != v1 || !strings.Contains(string(snap.Pin.Product), `"flash_sale":{"stock":100`) {
		t.Fatalf("late joiner's snapshot pin = %+v, want version %d with the flash sale", snap.Pin, v1)
	}
	if string(snap.Live) != `{"live":false}` {
		t.Errorf("snapshot live = %s, want offline", snap.Live)
	}

	// A viewer may not pin.
	if f := late.mustCall(map[string]any{"cmd": "pin", "room": room, "product": product("p2", 1)}); f.Error == nil || f.Error.Code != codeForbidden {
		t.Fatalf("viewer pin reply = %+v, want forbidden", f)
	}
	if f := late.mustCall(map[string]any{"cmd": "unpin", "room": room}); f.Error == nil || f.Error.Code != codeForbidden {
		t.Fatalf("viewer unpin reply = %+v, want forbidden", f)
	}
	// A bad product is refused.
	if f := host.mustCall(map[string]any{"cmd": "pin", "room": room, "product": map[string]any{"id": "x"}}); f.Error == nil || f.Error.Code != codeBadRequest {
		t.Fatalf("bad product reply = %+v, want bad_request", f)
	}

	// HTTP API: a bad key is refused, the right one pins.
	post := func(key, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/api/rooms/"+room+"/pin", strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp
	}
	p3, _ := json.Marshal(product("p3", 5))
	for _, key := range []string{"", "wrong"} {
		if resp := post(key, string(p3)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("key %q: status %d, want 401", key, resp.StatusCode)
		}
	}
	if n := b.counter(t, "liveroom_api_refused_total"); n != 2 {
		t.Errorf("api refused = %v, want 2", n)
	}
	if resp := post("k3y", string(p3)); resp.StatusCode != http.StatusOK {
		t.Fatalf("pin over HTTP: status %d", resp.StatusCode)
	}
	for _, v := range []*stateClient{host, early, late} {
		v.waitState("pin", func(ev stateEvent) bool { return strings.Contains(string(ev.Product), `"id":"p3"`) })
	}
	// Unpin: the product becomes null, with a newer version.
	v4 := pinVersion(t, host.mustCall(map[string]any{"cmd": "unpin", "room": room}))
	if ev := early.waitState("pin", func(ev stateEvent) bool { return ev.Version == v4 }); string(ev.Product) != "null" {
		t.Fatalf("unpin event product = %s, want null", ev.Product)
	}
}

// A viewer that does not read while chat floods the room loses chat, not pins: when it
// reads again, the latest pin version is there.
func TestSlowViewerGetsLatestPin(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{QueueBytes: 32 << 10, ChatRate: 1e6, ChatBurst: 1e6, MaxFrameBytes: 64 << 10, MaxChatRunes: 20000,
		Fanout: fanout.Config{Tick: 2 * time.Millisecond}})
	const room = "flood"
	slow, err := dialStateWith(t, g.url, tinyBufferClient(), false)
	if err != nil {
		t.Fatal(err)
	}
	slow.t = t
	b, _ := json.Marshal(map[string]any{"id": "j", "cmd": "join", "room": room, "token": mintToken(t, "slow", auth.RoleViewer, []string{room}, time.Hour)})
	if err := slow.ws.Write(t.Context(), 1, b); err != nil {
		t.Fatal(err)
	}
	host := mustDialState(t, g.url)
	host.join(room, mintToken(t, "h1", auth.RoleHost, []string{room}, time.Hour))

	text := strings.Repeat("刷", 6000) // 18 KB lines
	var last uint64
	for i := range 300 {
		if f := host.mustCall(map[string]any{"cmd": "chat", "room": room, "text": text, "cid": fmt.Sprint(i)}); f.Error != nil {
			t.Fatal(f.Error)
		}
		if i%50 == 49 {
			last = pinVersion(t, host.mustCall(map[string]any{"cmd": "pin", "room": room, "product": product(fmt.Sprint("p", i), i)}))
		}
	}
	// Wait until the room has flushed the last pin to the slow viewer's queue: the host,
	// on the same gateway, has it.
	host.waitState("pin", func(ev stateEvent) bool { return ev.Version == last })
	if drops := g.counter(t, "liveroom_queue_drops_total", "reason", "chat_oldest") + g.counter(t, "liveroom_queue_drops_total", "reason", "chat_new"); drops == 0 {
		t.Fatal("no chat dropped: the viewer was not slow")
	}
	slow.startReading()
	ev := slow.waitState("pin", func(ev stateEvent) bool { return ev.Version == last })
	if !strings.Contains(string(ev.Product), `"id":"p299"`) {
		t.Fatalf("slow viewer's last pin = %s", ev.Product)
	}
	if n := g.counter(t, "liveroom_disconnects_total", "code", closeLabel(CloseTooSlow)); n != 0 {
		t.Fatalf("%v viewers closed as too slow", n)
	}
}

// The snapshot carries media's live status from LR_LIVE when there is one.
func TestSnapshotLiveStatus(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "LR_LIVE", Subjects: []string{"lr.live.>"}, MaxMsgsPerSubject: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "lr.live.tv", []byte(`{"room":"tv","live":true,"tracks":[{"kind":"video"}],"ts":1764050000000}`)); err != nil {
		t.Fatal(err)
	}
	c := mustDialState(t, g.url)
	snap := c.join("tv", mintToken(t, "v", auth.RoleViewer, []string{"tv"}, time.Hour))
	var live struct {
		Live bool `json:"live"`
	}
	if err := json.Unmarshal(snap.Live, &live); err != nil || !live.Live {
		t.Fatalf("snapshot live = %s, want live", snap.Live)
	}
}

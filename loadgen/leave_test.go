package loadgen

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveroom/liveroom/gateway"
)

// cutProxy forwards WebSocket connections to a gateway and drops a connection, without
// forwarding it, at the first client frame that is a `leave` command: the viewer has
// sent its leave, and its connection dies before the answer (a reconnect storm, a
// gateway going away). The gateway sees a plain disconnect.
type cutProxy struct {
	ln   net.Listener
	dst  string
	cuts atomic.Int64
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn // closed by the test's cleanup
}

func newCutProxy(t *testing.T, target string) (*cutProxy, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, dst: u.Host}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p, "ws://" + ln.Addr().String() + u.Path
}

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *cutProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.dst)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, server)
	p.mu.Unlock()
	defer server.Close()
	p.wg.Go(func() {
		io.Copy(client, server)
		client.Close()
	})
	r := bufio.NewReader(client)
	// The upgrade request, as is.
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		if _, err := server.Write(line); err != nil {
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
	}
	// Then client frames (always masked), each forwarded whole unless it is a leave.
	for {
		frame, payload, err := readClientFrame(r)
		if err != nil {
			return
		}
		if bytes.Contains(payload, []byte(`"cmd":"leave"`)) {
			p.cuts.Add(1)
			return
		}
		if _, err := server.Write(frame); err != nil {
			return
		}
	}
}

// readClientFrame reads one masked WebSocket frame: its bytes as sent, and its
// payload unmasked.
func readClientFrame(r *bufio.Reader) (frame, payload []byte, err error) {
	hdr := make([]byte, 2, 14)
	if _, err = io.ReadFull(r, hdr); err != nil {
		return nil, nil, err
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		ext := make([]byte, 2)
		if _, err = io.ReadFull(r, ext); err != nil {
			return nil, nil, err
		}
		hdr, n = append(hdr, ext...), uint64(binary.BigEndian.Uint16(ext))
	case 127:
		ext := make([]byte, 8)
		if _, err = io.ReadFull(r, ext); err != nil {
			return nil, nil, err
		}
		hdr, n = append(hdr, ext...), binary.BigEndian.Uint64(ext)
	}
	var key [4]byte
	if hdr[1]&0x80 != 0 {
		if _, err = io.ReadFull(r, key[:]); err != nil {
			return nil, nil, err
		}
		hdr = append(hdr, key[:]...)
	}
	body := make([]byte, n)
	if _, err = io.ReadFull(r, body); err != nil {
		return nil, nil, err
	}
	payload = make([]byte, n)
	for i := range body {
		payload[i] = body[i] ^ key[i%4]
	}
	return append(hdr, body...), payload, nil
}

// TestLeaveLostDoesNotRejoin plays the seed profile (churn: viewers leave all along)
// with every leave cut on its way to the gateway, so each leaving viewer's connection
// drops before the answer. A viewer that has sent its leave must not reconnect: if it
// did, the room would count a viewer that the run does not, and nobody would be shown
// the audience the run expects (the seed runs' "0 of N viewers shown the right count").
func TestLeaveLostDoesNotRejoin(t *testing.T) {
	gws := startGatewaysCfg(t, 2, gateway.Config{})
	var proxies []*cutProxy
	var targets []string
	for _, g := range gws {
		p, u := newCutProxy(t, g.url)
		proxies = append(proxies, p)
		targets = append(targets, u)
	}
	cfg := Config{
		Targets:    targets,
		Room:       "lg-leave",
		Secret:     testSecret,
		Viewers:    120,
		Speed:      1200,
		ChatRate:   -1,
		ChatBursts: -1,
		FlashSales: -1,
		Seed:       3,
		Drain:      15 * time.Second,
		Progress:   t.Output(),
	}
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var cuts int64
	for _, p := range proxies {
		cuts += p.cuts.Load()
	}
	on := r.Classes["online"]
	t.Logf("leaves cut %d, reconnects %d, closes %v, online %+v", cuts, r.Reconnects, r.Closes, on)
	if cuts == 0 {
		t.Fatal("no leave was cut: the test did not exercise a lost leave")
	}
	if on.Expected == 0 || on.Lost != 0 {
		t.Errorf("online: %d of %d viewers shown the room's audience at the end", on.Delivered, on.Expected)
	}
}

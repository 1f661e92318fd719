package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// The WebRTC side of a run talks to one media server: the WHEP/WHIP endpoints under
// Config.WHEPURL, and the UDP addresses its SDP answers offer. The peers here gather
// host candidates only (no STUN, no TURN, no mDNS); against a loopback media server
// they bind and offer 127.0.0.1 alone, so no packet leaves the loopback interface.

// mediaBase is the media server's base URL: Config.WHEPURL, or the first target's
// host and port over http(s).
func mediaBase(cfg *Config) (string, error) {
	raw := cfg.WHEPURL
	if raw == "" {
		if len(cfg.Targets) == 0 {
			return "", ErrNoTargets
		}
		u, err := url.Parse(cfg.Targets[0])
		if err != nil {
			return "", fmt.Errorf("loadgen: target %q: %w", cfg.Targets[0], err)
		}
		u.Scheme = map[string]string{"wss": "https"}[u.Scheme]
		if u.Scheme == "" {
			u.Scheme = "http"
		}
		raw = u.Scheme + "://" + u.Host
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("loadgen: WHEP URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("loadgen: WHEP URL %q: scheme must be http or https", raw)
	}
	if !cfg.AllowRemote && !loopbackHost(u.Hostname()) {
		return "", fmt.Errorf("%w: %q", ErrRemote, raw)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

// loopbackHost reports whether host is localhost or an address in 127.0.0.0/8 or ::1.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clientAPI builds the Pion API of the run's peers. Viewers use no interceptors:
// they send no NACKs (a loss is counted as it happens on the way, not after a
// retransmission), no receiver reports and no TWCC, which keeps a few hundred of them
// cheap. The publisher uses Pion's defaults (NACK responder, sender reports), as a
// browser would. local restricts ICE to 127.0.0.1.
func clientAPI(local, publisher bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if publisher {
		if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
			return nil, err
		}
	}
	var se webrtc.SettingEngine
	std, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	se.SetNet(bufferedNet{std})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if local {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// socketReadBuffer is each peer's UDP receive buffer: about 4 s of a 1.8 Mbit/s
// stream, so that a load generator starved of CPU for a moment (it shares the
// machine with the server) does not drop packets in its own sockets and report them
// as the server's loss. The kernel caps it at net.core.rmem_max.
const socketReadBuffer = 1 << 20

// bufferedNet is the standard network with socketReadBuffer on every UDP socket.
type bufferedNet struct{ *stdnet.Net }

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if b, ok := c.(interface{ SetReadBuffer(int) error }); ok && err == nil {
		_ = b.SetReadBuffer(socketReadBuffer)
	}
	return c, err
}

// errNotLive is a WHEP 404: the room has no publisher (yet).
var errNotLive = errors.New("room is not live")

// httpStatusError is any other refusal of an offer.
type httpStatusError struct {
	code int
	body string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.code, strings.TrimSpace(e.body))
}

// exchange sends pc's complete offer (non-trickle: gathering finished) to endpoint
// and applies the answer. It returns the session's resource URL. sent is called just
// before the request goes out.
func exchange(ctx context.Context, client *http.Client, pc *webrtc.PeerConnection, endpoint, token string, sent func()) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if sent != nil {
		sent()
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	switch resp.StatusCode {
	case http.StatusCreated:
	case http.StatusNotFound:
		return "", errNotLive
	default:
		return "", &httpStatusError{resp.StatusCode, string(body)}
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" || loc.Host != resp.Request.URL.Host {
		return "", nil // no resource here to delete; the session ends with the connection
	}
	return loc.String(), nil
}

// deleteSession ends a WHIP/WHEP session (best effort, bounded by 5 s).
func deleteSession(client *http.Client, resource string) {
	if resource == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, resource, nil)
	if err != nil {
		return
	}
	if resp, err := client.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

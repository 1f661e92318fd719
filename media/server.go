package media

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveroom/liveroom/auth"
)

// Server is a WHIP/WHEP media server: one publisher per room, many viewers, every
// track carried by a forwarder.
type Server struct {
	// set in New
	cfg     Config
	m       *metrics
	status  *statusPublisher
	pubAPI  *webrtc.API
	viewAPI *webrtc.API
	udpMux  ice.UDPMux
	udpPort int
	handler http.Handler

	wg sync.WaitGroup // every goroutine the server starts

	mu     sync.Mutex
	closed bool
	rooms  map[string]*broadcast // by room: the publisher, from its WHIP POST to its end
}

// New binds the ICE UDP port, creates the LR_LIVE stream when nc is not nil (live
// status is not published without NATS), and registers the metrics on reg.
func New(cfg Config, nc *nats.Conn, reg prometheus.Registerer) (*Server, error) {
	cfg = cfg.withDefaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("media: metrics: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, err := newStatusPublisher(ctx, nc, cfg)
	if err != nil {
		return nil, err
	}
	lf := logging.NewDefaultLoggerFactory()
	mux, port, err := listenICE(cfg, lf)
	if err != nil {
		return nil, err
	}
	se, err := settingEngine(cfg, mux, lf)
	if err != nil {
		_ = mux.Close()
		return nil, err
	}
	pubAPI, viewAPI, err := newAPIs(se)
	if err != nil {
		_ = mux.Close()
		return nil, err
	}
	s := &Server{
		cfg: cfg, m: m, status: status, pubAPI: pubAPI, viewAPI: viewAPI,
		udpMux: mux, udpPort: port, rooms: map[string]*broadcast{},
	}
	s.handler = s.routes()
	return s, nil
}

// UDPPort is the port that carries every peer's ICE, DTLS and SRTP traffic.
func (s *Server) UDPPort() int { return s.udpPort }

// PublicURL is the base URL this server announces as the origin of the rooms
// published to it (Config.PublicURL); "" when it announces none.
func (s *Server) PublicURL() string { return s.cfg.PublicURL }

// Handler serves /whip/{room} and /whep/{room} and their resources. Mount it at the
// root of the HTTP server (the resource URLs it returns are absolute paths).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whip/{room}", s.whipPost)
	mux.HandleFunc("DELETE /whip/{room}/{id}", s.whipDelete)
	mux.HandleFunc("POST /whep/{room}", s.whepPost)
	mux.HandleFunc("DELETE /whep/{room}/{id}", s.whepDelete)
	// Trickle ICE and ICE restarts are not supported: answers carry every candidate.
	mux.HandleFunc("PATCH /whip/{room}/{id}", noTrickle)
	mux.HandleFunc("PATCH /whep/{room}/{id}", noTrickle)
	mux.HandleFunc("OPTIONS /whip/", preflight)
	mux.HandleFunc("OPTIONS /whep/", preflight)
	return cors(mux)
}

// Close ends every publisher and viewer (live status goes offline), closes the UDP
// port, and waits for every goroutine the server started. Close it before the NATS
// connection it was given.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var bs []*broadcast
	for _, b := range s.rooms {
		bs = append(bs, b)
	}
	s.mu.Unlock()
	for _, b := range bs {
		b.end()
	}
	s.wg.Wait()
	return s.udpMux.Close()
}

// spawn runs fn in a goroutine the server waits for, unless the server is closing.
func (s *Server) spawn(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// cors lets browser players on other origins use WHIP/WHEP: tokens travel in the
// Authorization header, never in cookies, so any origin may call.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Patch")
		next.ServeHTTP(w, r)
	})
}

func preflight(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST, DELETE, PATCH, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Max-Age", "86400")
	h.Set("Accept-Post", "application/sdp")
	w.WriteHeader(http.StatusNoContent)
}

func noTrickle(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Allow", "DELETE")
	http.Error(w, "trickle ICE and ICE restarts are not supported: the answer carries every candidate", http.StatusMethodNotAllowed)
}

// refuse answers an HTTP error with a plain-text reason and counts it.
func (s *Server) refuse(w http.ResponseWriter, code int, reason, msg string) {
	s.m.refused.WithLabelValues(reason).Inc()
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="liveroom"`)
	}
	http.Error(w, msg, code)
}

// authorize checks the request's Bearer token for room. A publisher needs the host
// role; a viewer any role, or no token at all when anonymous viewers are allowed.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, room string, publish bool) bool {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	if tok == "" && !publish && s.cfg.AllowAnonymous {
		return true
	}
	c, err := auth.Verify(s.cfg.Secret, tok, time.Now())
	if err != nil || len(s.cfg.Secret) == 0 {
		s.refuse(w, http.StatusUnauthorized, "token", "missing, invalid or expired token")
		return false
	}
	if publish && c.Role != auth.RoleHost {
		s.refuse(w, http.StatusForbidden, "role", "only a host token may publish")
		return false
	}
	if !c.AllowsRoom(room) {
		s.refuse(w, http.StatusForbidden, "room", fmt.Sprintf("token does not allow room %q", room))
		return false
	}
	return true
}

// readOffer checks the room name and content type and reads the SDP offer.
func (s *Server) readOffer(w http.ResponseWriter, r *http.Request) (string, bool) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/sdp" {
		s.refuse(w, http.StatusUnsupportedMediaType, "content_type", "the offer must be sent as application/sdp")
		return "", false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil || len(body) == 0 || len(body) > 64<<10 {
		s.refuse(w, http.StatusBadRequest, "offer", "missing or oversized SDP offer")
		return "", false
	}
	return string(body), true
}

// answer applies the remote offer and returns the complete answer (non-trickle ICE:
// every candidate is in it).
func (s *Server) answer(ctx context.Context, pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %w", errBadOffer, err)
	}
	// A section the peer would receive on but we have no track for (a viewer asking
	// for a kind the publisher does not send) is answered inactive: Pion would answer
	// it sendonly, and a browser would then wait for packets that never come.
	for _, t := range pc.GetTransceivers() {
		if t.Sender() == nil && t.Direction() == webrtc.RTPTransceiverDirectionSendonly {
			if err := t.Stop(); err != nil {
				return "", err
			}
		}
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return "", fmt.Errorf("%w: %w", errBadOffer, err)
	}
	t := time.NewTimer(s.cfg.GatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		return "", errors.New("media: ICE gathering timed out")
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return pc.LocalDescription().SDP, nil
}

var errBadOffer = errors.New("media: offer not accepted")

// writeAnswer sends 201 Created with the answer and the session's resource URL.
func writeAnswer(w http.ResponseWriter, location, sdp string) {
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, sdp)
}

// answerError maps an answer failure to an HTTP status.
func (s *Server) answerError(w http.ResponseWriter, err error) {
	if errors.Is(err, errCodecMismatch) {
		s.refuse(w, http.StatusBadRequest, "codec", "the offer has no codec the publisher sends")
		return
	}
	if errors.Is(err, errBadOffer) {
		s.refuse(w, http.StatusBadRequest, "offer", err.Error())
		return
	}
	s.refuse(w, http.StatusInternalServerError, "internal", err.Error())
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validRoom mirrors fanout.ValidRoom: 1-64 characters of [A-Za-z0-9_-], so a room is
// one NATS subject token and one URL path segment.
func validRoom(room string) bool {
	if len(room) == 0 || len(room) > 64 {
		return false
	}
	for i := 0; i < len(room); i++ {
		c := room[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

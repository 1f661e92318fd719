package media

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
)

// offerSDP is a complete publisher offer (H.264 + Opus) from a Pion client.
func offerSDP(t *testing.T, api *webrtc.API) string {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.GracefulClose() })
	for _, c := range []webrtc.RTPCodecCapability{
		{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
	} {
		tr, _ := webrtc.NewTrackLocalStaticRTP(c, strings.Split(c.MimeType, "/")[0], "pub")
		if _, err := pc.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
	}
	return completeOffer(t, pc)
}

func TestRefusals(t *testing.T) {
	env := newTestEnv(t, Config{})
	api := clientAPI(t)
	whip := env.web.URL + "/whip/r1"
	whep := env.web.URL + "/whep/r1"
	host := mint(t, auth.RoleHost, "r1")
	offer := offerSDP(t, api)

	for _, tc := range []struct {
		name, url, token string
		want             int
	}{
		{"whip without token", whip, "", http.StatusUnauthorized},
		{"whip bad token", whip, "not-a-token", http.StatusUnauthorized},
		{"whip viewer token", whip, mint(t, auth.RoleViewer, "r1"), http.StatusForbidden},
		{"whip other room", whip, mint(t, auth.RoleHost, "r2"), http.StatusForbidden},
		{"whip bad room name", env.web.URL + "/whip/a.b", host, http.StatusBadRequest},
		{"whep without token", whep, "", http.StatusUnauthorized},
		{"whep other room", whep, mint(t, auth.RoleViewer, "r2"), http.StatusForbidden},
		{"whep not live", whep, mint(t, auth.RoleViewer, "r1"), http.StatusNotFound},
	} {
		code, _, body := post(t, tc.url, tc.token, offer)
		if code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.want)
		}
	}

	// Wrong content type.
	req, _ := http.NewRequest(http.MethodPost, whip, strings.NewReader(offer))
	req.Header.Set("Authorization", "Bearer "+host)
	req.Header.Set("Content-Type", "text/plain")
	if code, _, _ := do(t, req); code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain offer: %d, want 415", code)
	}

	// One publisher per room: the second gets 409 until the first ends.
	code, hdr, body := post(t, whip, host, offer)
	if code != http.StatusCreated || hdr.Get("Content-Type") != "application/sdp" || !strings.HasPrefix(hdr.Get("Location"), "/whip/r1/") {
		t.Fatalf("first publisher: %d %v %q", code, hdr, body)
	}
	if !strings.Contains(body, "127.0.0.1") {
		t.Errorf("answer has no 127.0.0.1 candidate:\n%s", body)
	}
	if code, _, body := post(t, whip, host, offerSDP(t, api)); code != http.StatusConflict || !strings.Contains(body, "already has a live publisher") {
		t.Errorf("second publisher: %d %q, want 409", code, body)
	}
	// Not live until a track arrives: viewers get 404.
	if code, _, _ := post(t, whep, mint(t, auth.RoleViewer, "r1"), offer); code != http.StatusNotFound {
		t.Errorf("whep before media: %d, want 404", code)
	}
	req, _ = http.NewRequest(http.MethodDelete, env.web.URL+hdr.Get("Location")+"x", nil)
	if code, _, _ := do(t, req); code != http.StatusNotFound {
		t.Errorf("DELETE of a wrong resource: %d, want 404", code)
	}
	req, _ = http.NewRequest(http.MethodDelete, env.web.URL+hdr.Get("Location"), nil)
	if code, _, _ := do(t, req); code != http.StatusOK {
		t.Errorf("DELETE: %d, want 200", code)
	}
	if code, _, body := post(t, whip, host, offerSDP(t, api)); code != http.StatusCreated {
		t.Errorf("publisher after DELETE: %d %q", code, body)
	}

	// CORS preflight for browser players.
	req, _ = http.NewRequest(http.MethodOptions, whep, nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	code, hdr, _ = do(t, req)
	if code != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(hdr.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(hdr.Get("Access-Control-Expose-Headers"), "Location") {
		t.Errorf("preflight: %d %v", code, hdr)
	}
	req, _ = http.NewRequest(http.MethodPatch, env.web.URL+"/whip/r1/abc", nil)
	if code, _, _ := do(t, req); code != http.StatusMethodNotAllowed {
		t.Errorf("PATCH: %d, want 405", code)
	}
}

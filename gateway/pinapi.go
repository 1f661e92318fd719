package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"

	"github.com/liveroom/liveroom/fanout"
)

// The shop backend's pin API (docs/protocol.md, "HTTP API"):
//
//	POST   /api/rooms/{room}/pin   body: a product card   → {"version": N}
//	DELETE /api/rooms/{room}/pin                          → {"version": N}
//
// with `Authorization: Bearer <Config.APIKey>`. Without an APIKey the API is off (404).

func (g *Gateway) routeState(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/rooms/{room}/pin", g.servePin)
	mux.HandleFunc("DELETE /api/rooms/{room}/pin", g.servePin)
}

func (g *Gateway) servePin(w http.ResponseWriter, r *http.Request) {
	if g.cfg.APIKey == "" {
		http.NotFound(w, r)
		return
	}
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix ||
		subtle.ConstantTimeCompare([]byte(h[len(prefix):]), []byte(g.cfg.APIKey)) != 1 {
		g.statem.apiRefused.Inc()
		apiError(w, http.StatusUnauthorized, codeUnauthorized, "bad or missing API key")
		return
	}
	room := r.PathValue("room")
	if !fanout.ValidRoom(room) {
		apiError(w, http.StatusBadRequest, codeBadRequest, "room must be 1-64 characters of A-Z a-z 0-9 _ -")
		return
	}
	var p *fanout.Product
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			apiError(w, http.StatusBadRequest, codeBadRequest, "unreadable body")
			return
		}
		if p, err = parseProduct(body); err != nil {
			apiError(w, http.StatusBadRequest, codeBadRequest, err.Error())
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.PublishTimeout)
	defer cancel()
	if cerr := g.openFlashSale(ctx, room, p); cerr != nil {
		apiError(w, flashHTTPStatus(cerr), cerr.Code, cerr.Message)
		return
	}
	v, err := g.hub.Pin(ctx, room, p, fanout.User{ID: "api", Name: "shop", Role: "api"})
	if err != nil {
		g.log.Warn("pin not stored", "room", room, "err", err)
		apiError(w, http.StatusServiceUnavailable, codeUnavailable, "pin not stored; retry")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(pinResult{Version: v})
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]*cmdError{"error": errorf(code, msg)})
}

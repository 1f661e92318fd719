package media_test

import (
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveroom/liveroom/media"
)

// A media server mounted next to other handlers. With a *nats.Conn instead of nil,
// rooms' live status is published to lr.live.<room>.
func ExampleNew() {
	srv, err := media.New(media.Config{
		Secret:       []byte("the gateway's secret"),
		UDPPort:      0,                     // any free port; 8189 in production
		ICEAddresses: []string{"127.0.0.1"}, // this machine only
	}, nil, prometheus.NewRegistry())
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	mux := http.NewServeMux()
	mux.Handle("/whip/", srv.Handler())
	mux.Handle("/whep/", srv.Handler())
	log.Printf("WebRTC on UDP port %d", srv.UDPPort())
	_ = mux // http.ListenAndServe(":8080", mux)
}

package loadgen

import (
	"net"
	"net/http"
	"net/url"
	"time"
)

// sourceAddrs picks the source addresses connections are spread over. One source
// address has ~28k ephemeral ports towards one destination; once a run needs more
// connections than PortsPerSourceAddr (counted over every shard, with a quarter of
// headroom for leaving and reconnecting viewers), connections are bound round-robin
// to 127.0.0.2, 127.0.0.3, … — every address of 127.0.0.0/8 is on the loopback
// interface. Below that, or for targets that are not IPv4 loopback, the kernel picks.
func sourceAddrs(c *Config) []string {
	need := (c.Viewers*5/4 + c.PortsPerSourceAddr - 1) / c.PortsPerSourceAddr
	if need <= 1 {
		return nil
	}
	for _, t := range c.Targets {
		u, err := url.Parse(t)
		if err != nil {
			return nil
		}
		ip := net.ParseIP(u.Hostname())
		if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
			return nil
		}
	}
	addrs := make([]string, 0, need)
	for i := range min(need, 250) {
		addrs = append(addrs, net.IPv4(127, 0, 0, byte(2+i)).String())
	}
	return addrs
}

// dialClients builds one HTTP client per source address (one with the kernel's
// choice when there is none). Each has its own transport so that nothing is shared
// with http.DefaultTransport; WebSocket handshakes hijack their connection, so the
// transports hold no idle connections.
func dialClients(sources []string) []*http.Client {
	mk := func(local net.Addr) *http.Client {
		d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: local}
		return &http.Client{Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: -1,
			DisableCompression:  true,
		}}
	}
	if len(sources) == 0 {
		return []*http.Client{mk(nil)}
	}
	cs := make([]*http.Client, len(sources))
	for i, s := range sources {
		cs[i] = mk(&net.TCPAddr{IP: net.ParseIP(s)})
	}
	return cs
}

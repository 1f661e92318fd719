package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
)

// mediaRun is the WebRTC side of a run, in the parent process: an optional WHIP
// publisher (publisher.go) and Config.WHEP viewers (whep.go) on one media server,
// whose CPU and memory it reads from /metrics next to the WHEP endpoint.
//
// Its clock: viewers join from the start at WHEPJoinRate; the measurement ends at
// end (the run's Duration less a teardown margin), after which every viewer deletes
// its session and closes, then the publisher. The server's CPU per packet is taken
// over the steady window, from the moment every viewer has started (or failed) to
// end; its memory per viewer is the RSS growth from before the first viewer to end.
type mediaRun struct {
	// set in newMediaRun
	cfg       *Config
	base      time.Time // the run's start: viewers' times are measured from it
	end       time.Time // the measurement ends, teardown begins
	endWindow time.Time // end − driftWindow: where a viewer's final delay is taken
	client    *http.Client
	viewAPI   *webrtc.API
	pubAPI    *webrtc.API
	whep      string // endpoint URLs
	whip      string
	metrics   string
	settledCh chan struct{} // closed when every viewer has started or failed
	progress  io.Writer

	packets  atomic.Int64 // every RTP packet every viewer received
	notLive  atomic.Int64 // WHEP 404s retried
	settledN atomic.Int64

	mu       sync.Mutex
	failures map[string]int64 // by reason
}

// WHEPReport is the WebRTC side of a run (`--whep`): what the viewers received,
// the publisher sent, and the media server spent.
type WHEPReport struct {
	URL string `json:"url"`
	// Viewers is how many were asked for; Connected got their connection up, Started
	// received a keyframe, Failed were refused or whose connection failed (Failures
	// by reason). NotLiveRetries counts WHEP 404s retried while the room was not live.
	Viewers        int              `json:"viewers"`
	Connected      int64            `json:"connected"`
	Started        int64            `json:"started"`
	Failed         int64            `json:"failed"`
	Failures       map[string]int64 `json:"failures,omitempty"`
	NotLiveRetries int64            `json:"not_live_retries"`
	// Packets is every RTP packet received; Lost the sequence numbers never received
	// from each track's first packet on (viewers send no NACK: a loss is what the way
	// lost, not what a retransmission failed to fix). LossPct = Lost/(Packets+Lost).
	Packets int64   `json:"packets"`
	Lost    int64   `json:"lost"`
	LossPct float64 `json:"loss_pct"`
	// StartedOffKeyframe counts viewers whose first video packet did not begin a
	// keyframe (the server starts every viewer on one: should be 0).
	StartedOffKeyframe int64 `json:"started_off_keyframe"`
	// FirstKeyframeMS is, per viewer, the time from sending its WHEP request to
	// receiving the first packet of a keyframe. Where it goes: AnswerMS, request →
	// SDP answer received; ConnectMS, request → connection up (ICE and DTLS done: the
	// server arms the viewer and asks the publisher for a keyframe).
	FirstKeyframeMS Percentiles `json:"first_keyframe_ms"`
	AnswerMS        Percentiles `json:"answer_ms"`
	ConnectMS       Percentiles `json:"connect_ms"`
	// DelayDriftMS is, per viewer that watched long enough, how much its delay
	// (arrival time − RTP time, the least in a 5 s window) grew from its first 5 s to
	// the measurement's last 5 s, clamped at 0; DelayDriftMeanMS is the signed mean.
	// GrowingDelay is set when the median grew by more than 50 ms: packets queue
	// somewhere and the viewers fall behind the live edge.
	DelayDriftMS     Percentiles `json:"delay_drift_ms"`
	DelayDriftMeanMS float64     `json:"delay_drift_mean_ms"`
	GrowingDelay     bool        `json:"growing_delay"`

	Publisher *PublisherReport  `json:"publisher,omitempty"`
	Server    MediaServerReport `json:"server"`
	Error     string            `json:"error,omitempty"`
}

// MediaServerReport is the media server's process, read from its /metrics
// (process_cpu_seconds_total, process_resident_memory_bytes,
// liveroom_media_packets_forwarded_total).
type MediaServerReport struct {
	MetricsURL string `json:"metrics_url"`
	// WindowS is the steady window: from every viewer started (or failed) to the
	// end of the measurement. CPUS is the server's CPU in it, PacketsReceived what
	// the viewers received in it, Forwarded what the server counted as forwarded.
	WindowS         float64 `json:"window_s"`
	CPUS            float64 `json:"cpu_s"`
	PacketsReceived int64   `json:"packets_received"`
	Forwarded       int64   `json:"forwarded"`
	// CPUUSPerPacket = CPUS / PacketsReceived, in µs.
	CPUUSPerPacket float64 `json:"cpu_us_per_packet"`
	// RSSBeforeMB is the RSS before the first viewer (the publisher is on), RSSMB at
	// the end of the measurement; KiBPerViewer is the growth per connected viewer.
	RSSBeforeMB  float64 `json:"rss_before_mb"`
	RSSMB        float64 `json:"rss_mb"`
	KiBPerViewer float64 `json:"kib_per_viewer"`
	Error        string  `json:"error,omitempty"`
}

// newMediaRun checks the media URL and prepares the clients. end bounds the
// measurement.
func newMediaRun(cfg *Config, base, end time.Time, progress io.Writer) (*mediaRun, error) {
	root, err := mediaBase(cfg)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(root)
	if err != nil {
		return nil, err
	}
	local := loopbackHost(u.Hostname())
	viewAPI, err := clientAPI(local, false)
	if err != nil {
		return nil, err
	}
	pubAPI, err := clientAPI(local, true)
	if err != nil {
		return nil, err
	}
	return &mediaRun{
		cfg: cfg, base: base, end: end, endWindow: end.Add(-driftWindow),
		client: &http.Client{
			Timeout:       15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
		},
		viewAPI: viewAPI, pubAPI: pubAPI,
		whep: root + "/whep/" + cfg.Room, whip: root + "/whip/" + cfg.Room, metrics: root + "/metrics",
		settledCh: make(chan struct{}), failures: map[string]int64{}, progress: progress,
	}, nil
}

// settle counts a viewer that has started or failed, once.
func (m *mediaRun) settle(v *whepViewer) {
	if v.settled.CompareAndSwap(false, true) && m.settledN.Add(1) == int64(m.cfg.WHEP) {
		close(m.settledCh)
	}
}

func (m *mediaRun) fail(reason string) {
	m.mu.Lock()
	m.failures[reason]++
	m.mu.Unlock()
}

// run plays the WebRTC side until end, tears it down, and reports.
func (m *mediaRun) run(ctx context.Context) *WHEPReport {
	r := &WHEPReport{URL: m.whep, Viewers: m.cfg.WHEP, Server: MediaServerReport{MetricsURL: m.metrics}}
	ctx, cancel := context.WithDeadline(ctx, m.end)
	defer cancel()
	if m.cfg.WHEP == 0 {
		close(m.settledCh)
	}

	var pub *publisher
	var pubErr error
	var pubWG sync.WaitGroup
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	var pubStart time.Time
	var pubEnd time.Time
	if m.cfg.WHEPPublish {
		var resource string
		pub, pubErr = newPublisher(m.pubAPI, m.cfg)
		if pubErr == nil {
			resource, pubErr = pub.publish(ctx, m.client, m.whip, m.cfg.Room, m.cfg.Secret)
		}
		if pubErr != nil {
			r.Error = pubErr.Error()
			if pub != nil {
				deleteSession(m.client, resource)
				pub.close()
				r.Publisher = pub.report(0, pubErr)
			}
			return r
		}
		pubStart = time.Now()
		pubWG.Go(func() {
			pubErr = pub.run(pubCtx)
			pubEnd = time.Now()
			deleteSession(m.client, resource)
			pub.close()
		})
	}

	before, err := scrapeMedia(ctx, m.client, m.metrics)
	if err != nil {
		r.Server.Error = err.Error()
	}

	// Viewers join at WHEPJoinRate; each plays until stop, then leaves.
	stop := make(chan struct{})
	viewers := make([]*whepViewer, 0, m.cfg.WHEP)
	var wg sync.WaitGroup
	tk := time.NewTicker(time.Duration(float64(time.Second) / m.cfg.WHEPJoinRate))
spawn:
	for i := range m.cfg.WHEP {
		if i > 0 {
			select {
			case <-tk.C:
			case <-ctx.Done():
				break spawn
			}
		}
		v := newWHEPViewer(m)
		viewers = append(viewers, v)
		token := ""
		if !m.cfg.WHEPAnonymous {
			token, err = auth.Mint(m.cfg.Secret, auth.Claims{
				UserID: "whep-" + strconv.Itoa(i), Name: "whep " + strconv.Itoa(i), Role: auth.RoleViewer,
				Rooms: []string{m.cfg.Room}, Expires: time.Now().Add(m.cfg.Duration + time.Hour),
			})
			if err != nil {
				r.Error = err.Error()
				break
			}
		}
		wg.Go(func() {
			err := v.play(ctx, m.whep, token)
			if err != nil {
				var he *httpStatusError
				switch {
				case ctx.Err() != nil:
					m.fail("not_live_by_end")
				case errors.As(err, &he):
					m.fail("http_" + strconv.Itoa(he.code))
				default:
					m.fail("error")
				}
				v.failed.Store(true)
				m.settle(v)
			}
			<-stop
			v.stop(m.client)
		})
	}
	tk.Stop()

	var progWG sync.WaitGroup
	progWG.Go(func() { m.report(ctx) })

	// The steady window: from every viewer settled to the end.
	var steady mediaSample
	var steadyPackets int64
	var steadyAt time.Time
	select {
	case <-m.settledCh:
		steadyAt = time.Now()
		steadyPackets = m.packets.Load()
		steady, err = scrapeMedia(ctx, m.client, m.metrics)
		if err != nil {
			r.Server.Error = err.Error()
		}
	case <-ctx.Done():
	}
	<-ctx.Done()
	progWG.Wait()
	endPackets := m.packets.Load()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	after, err := scrapeMedia(sctx, m.client, m.metrics)
	scancel()
	if err != nil {
		r.Server.Error = err.Error()
	}
	endAt := time.Now()
	close(stop)
	wg.Wait()
	stopPub()
	pubWG.Wait()

	if pub != nil {
		r.Publisher = pub.report(pubEnd.Sub(pubStart), pubErr)
	}
	m.collect(r, viewers)
	srv := &r.Server
	if !steadyAt.IsZero() && steady.ok && after.ok {
		srv.WindowS = endAt.Sub(steadyAt).Seconds()
		srv.CPUS = after.cpu - steady.cpu
		srv.PacketsReceived = endPackets - steadyPackets
		srv.Forwarded = int64(after.forwarded - steady.forwarded)
		if srv.PacketsReceived > 0 {
			srv.CPUUSPerPacket = srv.CPUS * 1e6 / float64(srv.PacketsReceived)
		}
	}
	if before.ok && after.ok {
		srv.RSSBeforeMB, srv.RSSMB = before.rss/(1<<20), after.rss/(1<<20)
		if r.Connected > 0 {
			srv.KiBPerViewer = (after.rss - before.rss) / 1024 / float64(r.Connected)
		}
	}
	return r
}

// report writes a progress line every 5 s until ctx ends.
func (m *mediaRun) report(ctx context.Context) {
	tk := time.NewTicker(5 * time.Second)
	defer tk.Stop()
	last := m.packets.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			n := m.packets.Load()
			fmt.Fprintf(m.progress, "whep %3.0fs: settled %d/%d, %d packets/s received\n",
				now.Sub(m.base).Seconds(), m.settledN.Load(), m.cfg.WHEP, (n-last)/5)
			last = n
		}
	}
}

// collect sums the viewers' stats into r; every viewer has stopped.
func (m *mediaRun) collect(r *WHEPReport, viewers []*whepViewer) {
	var firstKey, drift, answer, up Histogram
	var driftSum time.Duration
	for _, v := range viewers {
		sent := time.Duration(v.sentAt.Load())
		if a := v.answerAt.Load(); a > 0 {
			answer.Record(time.Duration(a) - sent)
		}
		if v.connected.Load() {
			r.Connected++
			up.Record(time.Duration(v.upAt.Load()) - sent)
		}
		started := false
		for _, ts := range v.tracks {
			r.Packets += ts.packets
			r.Lost += ts.lost()
			if !ts.video || !ts.started {
				continue
			}
			if !ts.startedOnKey {
				r.StartedOffKeyframe++
			}
			if ts.keyframe {
				started = true
				r.Started++
				firstKey.Record(ts.firstKey)
			}
			if ts.haveEnd && !ts.firstAt.Add(driftWindow).After(m.endWindow) {
				d := ts.endMin - ts.startMin
				driftSum += d
				drift.Record(max(0, d))
			}
		}
		if v.failed.Load() && !started {
			r.Failed++
		}
	}
	r.Failures = m.failures
	r.NotLiveRetries = m.notLive.Load()
	if total := r.Packets + r.Lost; total > 0 {
		r.LossPct = 100 * float64(r.Lost) / float64(total)
	}
	r.FirstKeyframeMS = percentiles(&firstKey)
	r.AnswerMS, r.ConnectMS = percentiles(&answer), percentiles(&up)
	r.DelayDriftMS = percentiles(&drift)
	if n := drift.Count(); n > 0 {
		r.DelayDriftMeanMS = ms(driftSum / time.Duration(n))
		r.GrowingDelay = r.DelayDriftMS.P50 > 50
	}
}

// mediaSample is one read of the media server's /metrics.
type mediaSample struct {
	ok        bool
	cpu, rss  float64
	forwarded float64
}

func scrapeMedia(ctx context.Context, client *http.Client, url string) (mediaSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return mediaSample{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return mediaSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return mediaSample{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var s mediaSample
	var haveCPU bool
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := metricValue(line, "process_cpu_seconds_total"); ok {
			s.cpu, haveCPU = v, true
		} else if v, ok := metricValue(line, "process_resident_memory_bytes"); ok {
			s.rss = v
		} else if v, ok := metricValue(line, "liveroom_media_packets_forwarded_total"); ok {
			s.forwarded = v
		}
	}
	if err := sc.Err(); err != nil {
		return mediaSample{}, err
	}
	if !haveCPU {
		return mediaSample{}, fmt.Errorf("%s: no process_cpu_seconds_total", url)
	}
	s.ok = true
	return s, nil
}

// startMedia starts the WebRTC side of a run, when it has one, in a goroutine owned
// by the returned wait, which returns its report (nil without one). The measurement
// ends a teardown margin (a fifth of Duration, at most 5 s) before Duration, so that
// sessions are deleted and closed within it.
func startMedia(ctx context.Context, cfg *Config, began time.Time, progress io.Writer) (wait func() *WHEPReport, err error) {
	if cfg.WHEP == 0 && !cfg.WHEPPublish {
		return func() *WHEPReport { return nil }, nil
	}
	end := began.Add(cfg.Duration - min(5*time.Second, cfg.Duration/5))
	m, err := newMediaRun(cfg, began, end, progress)
	if err != nil {
		return nil, err
	}
	done := make(chan *WHEPReport, 1)
	go func() { done <- m.run(ctx) }()
	return func() *WHEPReport { return <-done }, nil
}

package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// scraper reads each target's process figures from its Prometheus endpoint (derived
// from the WebSocket URL: same host and port, path /metrics) once a second while the
// run lasts. It talks only to the targets' own addresses.
type scraper struct {
	client *http.Client
	urls   []string

	mu      sync.Mutex
	first   []float64 // cpu seconds at the first successful scrape
	lastCPU []float64
	peakRSS []float64
	lastRSS []float64
	errs    []string
	samples map[int]gwSample // second → sum over targets
}

type gwSample struct {
	cpu float64 // cores busy over the last second
	rss float64 // MiB
}

func newScraper(targets []string) *scraper {
	s := &scraper{
		client:  &http.Client{Timeout: 2 * time.Second},
		samples: map[int]gwSample{},
	}
	for _, t := range targets {
		s.urls = append(s.urls, metricsURL(t))
	}
	n := len(s.urls)
	s.first, s.lastCPU = make([]float64, n), make([]float64, n)
	s.peakRSS, s.lastRSS = make([]float64, n), make([]float64, n)
	s.errs = make([]string, n)
	for i := range s.first {
		s.first[i] = -1
	}
	return s
}

// run scrapes every second until ctx ends, then once more.
func (s *scraper) run(ctx context.Context, start time.Time) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	s.scrapeAll(context.Background(), -1, nil)
	prev := make([]float64, len(s.urls))
	copy(prev, s.lastCPU)
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.scrapeAll(fctx, -1, nil)
			cancel()
			return
		case now := <-t.C:
			s.scrapeAll(ctx, int(now.Sub(start)/time.Second), prev)
		}
	}
}

func (s *scraper) scrapeAll(ctx context.Context, sec int, prev []float64) {
	var sum gwSample
	for i, u := range s.urls {
		cpu, rss, err := s.scrape(ctx, u)
		s.mu.Lock()
		if err != nil {
			s.errs[i] = err.Error()
			s.mu.Unlock()
			continue
		}
		s.errs[i] = ""
		if s.first[i] < 0 {
			s.first[i] = cpu
		}
		if prev != nil {
			if prev[i] > 0 {
				sum.cpu += cpu - prev[i]
			}
			prev[i] = cpu
		}
		s.lastCPU[i] = cpu
		s.lastRSS[i] = rss / (1 << 20)
		s.peakRSS[i] = max(s.peakRSS[i], rss/(1<<20))
		sum.rss += rss / (1 << 20)
		s.mu.Unlock()
	}
	if sec >= 0 {
		s.mu.Lock()
		s.samples[sec] = sum
		s.mu.Unlock()
	}
}

// scrape reads process_cpu_seconds_total and process_resident_memory_bytes.
func (s *scraper) scrape(ctx context.Context, url string) (cpu, rss float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var haveCPU, haveRSS bool
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := metricValue(line, "process_cpu_seconds_total"); ok {
			cpu, haveCPU = v, true
		} else if v, ok := metricValue(line, "process_resident_memory_bytes"); ok {
			rss, haveRSS = v, true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !haveCPU || !haveRSS {
		return 0, 0, fmt.Errorf("%s: no process collector metrics", url)
	}
	return cpu, rss, nil
}

// metricValue parses "name value" (no labels) from a Prometheus text line.
func metricValue(line, name string) (float64, bool) {
	rest, ok := strings.CutPrefix(line, name)
	if !ok || len(rest) == 0 || rest[0] != ' ' {
		return 0, false
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v, err == nil
}

// gateways reports each target's CPU spent during the run and its memory.
func (s *scraper) gateways(targets []string) []GatewayReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]GatewayReport, len(targets))
	for i, t := range targets {
		g := GatewayReport{URL: t, Error: s.errs[i]}
		if s.first[i] >= 0 {
			g.CPUS = s.lastCPU[i] - s.first[i]
			g.RSSMB = s.peakRSS[i]
			g.RSSEndMB = s.lastRSS[i]
		}
		out[i] = g
	}
	return out
}

func (s *scraper) sample(sec int) gwSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples[sec]
}

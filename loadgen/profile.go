package loadgen

import (
	"math"
	"time"
)

// schedule turns a Config's profile into what the run should look like at real time t
// since the start: how many viewers are online, how fast they churn, how fast the room
// chats. It is a pure function of the Config (plus, for the flat profile, the moment
// the room was full), so every shard computes the same curve and takes its share.
type schedule struct {
	cfg *Config
}

// loadEnd is the real time at which the profile's load stops (chat stops, and in the
// seed profile the audience has left). For the flat profile it is relative to the
// moment the room was full.
func (s schedule) loadEnd(full time.Duration) time.Duration {
	c := s.cfg
	if c.Profile == ProfileFlat {
		return full + c.scaled(c.Hold)
	}
	return c.scaled(c.TailEnd + c.EndLeave)
}

// online is the audience the profile wants at real time t, as a fraction of Viewers.
func (s schedule) online(t time.Duration) float64 {
	c := s.cfg
	if c.Profile == ProfileFlat {
		if c.FlatJoinRate <= 0 || c.Viewers == 0 {
			return 1
		}
		return math.Min(1, c.FlatJoinRate*t.Seconds()/float64(c.Viewers))
	}
	p := time.Duration(float64(t) * c.Speed) // profile time
	frac := func(a, b time.Duration) float64 {
		if b <= a {
			return 1
		}
		return math.Max(0, math.Min(1, float64(p-a)/float64(b-a)))
	}
	switch {
	case p < c.ReminderWave:
		return c.ReminderShare * frac(0, c.ReminderWave)
	case p < c.SharingEnd:
		waves := 0.0
		waveShare := 0.0
		if c.Viewers > 0 {
			waveShare = max(0, float64(c.SharingWaveJoins)/float64(c.Viewers))
		}
		for i := range c.SharingWaves {
			start := s.waveStart(i)
			waves += waveShare * frac(start, start+c.WaveLength)
		}
		climb := math.Max(0, 1-c.ReminderShare-float64(max(0, c.SharingWaves))*waveShare)
		return math.Min(1, c.ReminderShare+climb*frac(c.ReminderWave, c.SharingEnd)+waves)
	case p < c.PlateauEnd:
		return s.plateau(p)
	case p < c.TailEnd:
		from := s.plateau(c.PlateauEnd)
		return from + (c.TailShare-from)*frac(c.PlateauEnd, c.TailEnd)
	default:
		return c.TailShare * (1 - frac(c.TailEnd, c.TailEnd+c.EndLeave))
	}
}

// waveStart is the profile time of sharing wave i: evenly spaced in the sharing phase.
func (s schedule) waveStart(i int) time.Duration {
	c := s.cfg
	span := c.SharingEnd - c.ReminderWave - c.WaveLength
	return c.ReminderWave + time.Duration(float64(span)*(float64(i)+0.5)/float64(max(1, c.SharingWaves)))
}

// plateau wanders between (1-PlateauJitter) and 1 of the peak, one slow cycle per
// 40 profile minutes, starting at the peak.
func (s schedule) plateau(p time.Duration) float64 {
	c := s.cfg
	phase := 2 * math.Pi * float64(p-c.SharingEnd) / float64(40*time.Minute)
	return 1 - c.PlateauJitter*(1-math.Cos(phase))/2
}

// churn is joins (and as many leaves) per real second at real time t.
func (s schedule) churn(t time.Duration) float64 {
	c := s.cfg
	if c.Profile == ProfileFlat {
		return 0
	}
	p := time.Duration(float64(t) * c.Speed)
	if p < c.SharingEnd || p >= c.TailEnd {
		return 0
	}
	return max(0, c.ChurnPerSec*c.Speed)
}

// chatRate is room-wide chat lines per real second at real time t (flat: since the
// room was full, negative before).
func (s schedule) chatRate(t time.Duration) float64 {
	c := s.cfg
	if c.Profile == ProfileFlat {
		if t < 0 || t >= c.scaled(c.Hold) {
			return 0
		}
		return max(0, c.FlatChatRate)
	}
	p := time.Duration(float64(t) * c.Speed)
	if p >= c.TailEnd {
		return 0
	}
	if burstAt(p, c.ChatBursts, c.ChatBurstLength, c.TailEnd) {
		return max(0, c.ChatBurstRate)
	}
	return max(0, c.ChatRate)
}

// cheerRate is room-wide cheer taps per real second at real time t (seed profile;
// the flat profile's FlatCheerRate applies while it holds).
func (s schedule) cheerRate(t time.Duration) float64 {
	c := s.cfg
	if c.Profile == ProfileFlat {
		return 0
	}
	p := time.Duration(float64(t) * c.Speed)
	if p >= c.TailEnd {
		return 0
	}
	if burstAt(p, c.CheerBursts, c.CheerBurstLength, c.TailEnd) {
		return max(0, c.CheerBurstRate)
	}
	return max(0, c.CheerRate)
}

// burstAt reports whether profile time p is inside one of n bursts of length l spread
// evenly over [0, span): burst k starts at (k+0.5)·span/n.
func burstAt(p time.Duration, n int, l, span time.Duration) bool {
	if n <= 0 {
		return false
	}
	every := span / time.Duration(n)
	k := p / every
	start := every*k + every/2
	return p >= start && p < start+l
}

package loadgen

import (
	"bytes"
	"strconv"
)

// Every viewer decodes every frame: at 22k viewers and 20 frames/s each that is
// 440k frames a second, next to the gateways on the same cores. encoding/json takes
// ~3 µs and 13 allocations per chat frame; parseEvents reads only what the
// accounting needs (each event's type, seq and cid) from an events frame in a single
// pass without allocating beyond the events slice. Anything unusual (a reset, an
// escaped cid, a shape it does not expect) returns false and the frame goes to
// encoding/json instead, so it is never less correct, only sometimes not faster.

var eventsPrefix = []byte(`{"type":"events",`)

// parseEvents appends the events of an events frame to evs.
func parseEvents(b []byte, evs []event) ([]event, bool) {
	if !bytes.HasPrefix(b, eventsPrefix) {
		return evs, false
	}
	i := bytes.Index(b, []byte(`"events":[`))
	if i < 0 {
		return evs, false
	}
	p := &scan{b: b, i: i + len(`"events":[`)}
	p.ws()
	if p.peek() == ']' {
		return evs, true
	}
	for {
		var ev event
		if !p.object(&ev) {
			return evs, false
		}
		if ev.Type == "reset" || ev.Type == "pin" {
			return evs, false // nested lines or product: the slow path reads them
		}
		evs = append(evs, ev)
		p.ws()
		switch p.next() {
		case ',':
			p.ws()
		case ']':
			return evs, true
		default:
			return evs, false
		}
	}
}

type scan struct {
	b []byte
	i int
}

func (p *scan) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *scan) next() byte {
	c := p.peek()
	p.i++
	return c
}

func (p *scan) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object reads one event object, keeping type, seq and cid.
func (p *scan) object(ev *event) bool {
	if p.next() != '{' {
		return false
	}
	p.ws()
	if p.peek() == '}' {
		p.i++
		return true
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return false
		}
		p.ws()
		if p.next() != ':' {
			return false
		}
		p.ws()
		switch string(key) { // no allocation: the compiler compares in place
		case "type":
			v, ok := p.str()
			if !ok {
				return false
			}
			ev.Type = internType(v)
		case "cid":
			v, ok := p.str()
			if !ok {
				return false
			}
			ev.CID = string(v)
		case "seq", "total", "online":
			start := p.i
			for p.i < len(p.b) && (p.b[p.i] >= '0' && p.b[p.i] <= '9' || p.b[p.i] == '-') {
				p.i++
			}
			n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
			if err != nil {
				return false
			}
			switch string(key) {
			case "seq":
				ev.Seq = n
			case "total":
				ev.Total = n
			default:
				ev.Online = n
			}
		default:
			if !p.skip() {
				return false
			}
		}
		p.ws()
		switch p.next() {
		case ',':
		case '}':
			return true
		default:
			return false
		}
	}
}

// str reads a string without escapes; false (fall back) when it has any.
func (p *scan) str() ([]byte, bool) {
	if p.next() != '"' {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case '\\':
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// skip passes over any value: strings (escapes included), numbers, literals, and
// nested objects and arrays.
func (p *scan) skip() bool {
	depth := 0
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			for p.i < len(p.b) && p.b[p.i] != '"' {
				if p.b[p.i] == '\\' {
					p.i++
				}
				p.i++
			}
			if p.i >= len(p.b) {
				return false
			}
			p.i++
		case c == '{' || c == '[':
			depth++
			p.i++
		case c == '}' || c == ']':
			if depth == 0 {
				return true // the end of the enclosing object: not ours
			}
			depth--
			p.i++
		case c == ',' && depth == 0:
			return true
		default:
			p.i++
		}
		if depth == 0 && p.i < len(p.b) {
			switch p.b[p.i] {
			case ',', '}', ']':
				return true
			}
		}
	}
	return false
}

// internType returns the event type as a constant string, so that decoding a type
// does not allocate.
func internType(b []byte) string {
	switch string(b) {
	case "chat":
		return "chat"
	case "delete":
		return "delete"
	case "reset":
		return "reset"
	case "cheers":
		return "cheers"
	case "online":
		return "online"
	}
	return string(b)
}

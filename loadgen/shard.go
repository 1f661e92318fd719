package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"
)

// A run above PerProcess viewers re-executes this program once per shard:
//
//	<Command...> --shard i/n
//
// The parent writes the shardSpec as one JSON line on the child's stdin. The child
// (ServeShard) answers on stdout with one JSON message per line:
//
//	{"tick": {...}}         once a second, for the live progress and the timeline
//	{"drain": {"max_seq": N, "max_pin": V}} when its load has stopped and its actions are answered
//	{"result": {...}}       at the end: raw histograms, lines and windows to merge
//
// and waits, after "drain", for the run-wide {"max_seq": N, "max_pin": V} on stdin so that every
// shard drains until the last line and pin stored by any shard have arrived. Once it has
// checked its viewers' online count it sends
//
//	{"checked": true}
//
// and waits until the parent closes its stdin, which it does once every shard has
// checked (or exited): a shard whose viewers leave while another is still checking
// would change the count that shard's viewers are shown.

type childMsg struct {
	Tick    *tick        `json:"tick,omitempty"`
	Drain   *drainMsg    `json:"drain,omitempty"`
	Checked bool         `json:"checked,omitempty"`
	Result  *shardResult `json:"result,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// drainMsg is what the run drains to: the highest chat seq and pin version stored.
type drainMsg struct {
	MaxSeq int64 `json:"max_seq"`
	MaxPin int64 `json:"max_pin"`
	// Online is how many of the run's viewers (and its host) are in the room: summed
	// over shards, what every viewer's online count should settle on.
	Online int64 `json:"online"`
}

// ServeShard runs one shard of a sharded run: it reads its spec from r, plays, and
// writes progress and its result to w. It is what `liveroom loadgen --shard i/n`
// calls; nothing else should.
func ServeShard(ctx context.Context, r io.Reader, w io.Writer) error {
	in := bufio.NewReader(r)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("loadgen shard: read spec: %w", err)
	}
	var spec shardSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fmt.Errorf("loadgen shard: spec: %w", err)
	}
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	send := func(m childMsg) error {
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(m)
	}
	e := newEngine(spec)
	e.progress = func(t tick) { send(childMsg{Tick: &t}) }
	e.agree = func(ctx context.Context, local drainMsg) (drainMsg, error) {
		if err := send(childMsg{Drain: &local}); err != nil {
			return local, err
		}
		// The read is bounded by the parent: it answers every shard, and closes our
		// stdin when it gives up on the run.
		got := make(chan drainMsg, 1)
		go func() {
			var m drainMsg
			b, err := in.ReadBytes('\n')
			if err == nil && json.Unmarshal(b, &m) == nil {
				got <- m
			}
			close(got)
		}()
		select {
		case m, ok := <-got:
			if !ok {
				return local, errors.New("loadgen shard: parent closed the drain")
			}
			return drainMsg{MaxSeq: max(local.MaxSeq, m.MaxSeq), MaxPin: max(local.MaxPin, m.MaxPin), Online: m.Online}, nil
		case <-ctx.Done():
			return local, ctx.Err()
		}
	}
	e.settle = func(ctx context.Context) {
		if send(childMsg{Checked: true}) != nil {
			return
		}
		closed := make(chan struct{})
		go func() {
			io.Copy(io.Discard, in) // until the parent closes our stdin
			close(closed)
		}()
		select {
		case <-closed:
		case <-ctx.Done():
		}
	}
	res, err := e.run(ctx)
	msg := childMsg{Result: res}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		msg.Error = err.Error() // the end of the run or an interrupt is not the shard's fault
	}
	return send(msg)
}

// child is one running shard process, seen from the parent.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	result *shardResult
	err    error
}

// runChildren starts n shard processes, relays their ticks to agg, coordinates their
// drain and returns their results once all have exited.
func runChildren(ctx context.Context, cfg *Config, specs []shardSpec, agg *aggregator) ([]*shardResult, error) {
	argv := cfg.Command
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("loadgen: find own executable: %w", err)
		}
		argv = []string{exe, "loadgen"}
	}
	n := len(specs)
	children := make([]*child, n)
	for i := range specs {
		args := append(append([]string{}, argv[1:]...), "--shard", fmt.Sprintf("%d/%d", i, n))
		cmd := exec.CommandContext(ctx, argv[0], args...)
		cmd.Env = append(os.Environ(), cfg.Env...)
		cmd.Stderr = os.Stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 20 * time.Second
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			for _, c := range children[:i] {
				c.stdin.Close()
				c.cmd.Wait()
			}
			return nil, fmt.Errorf("loadgen: start shard %d: %w", i, err)
		}
		children[i] = &child{cmd: cmd, stdin: stdin, stdout: stdout}
		b, _ := json.Marshal(specs[i])
		if _, err := stdin.Write(append(b, '\n')); err != nil {
			children[i].err = err
		}
	}

	// One reader per child; a coordinator answers the drain once every child has
	// either asked or exited, then closes every stdin once every child that asked has
	// checked its viewers or exited. A reader passes on at most one drain, one check
	// and its exit, so the buffer never fills.
	events := make(chan shardEvent, 3*n)
	var wg sync.WaitGroup
	for i, c := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dec := json.NewDecoder(c.stdout)
			asked, checked := false, false
			for {
				var m childMsg
				if err := dec.Decode(&m); err != nil {
					if !errors.Is(err, io.EOF) && c.err == nil {
						c.err = fmt.Errorf("shard %d output: %w", i, err)
					}
					break
				}
				switch {
				case m.Tick != nil:
					agg.add(*m.Tick)
				case m.Drain != nil && !asked:
					asked = true
					events <- shardEvent{i: i, drain: m.Drain}
				case m.Checked && !checked:
					checked = true
					events <- shardEvent{i: i, check: true}
				case m.Result != nil:
					c.result = m.Result
					if m.Error != "" {
						c.err = fmt.Errorf("shard %d: %s", i, m.Error)
					}
				}
			}
			events <- shardEvent{i: i, exit: true}
			agg.shardGone() // it sends no more ticks: stop waiting for them
			if err := c.cmd.Wait(); err != nil && c.err == nil {
				c.err = fmt.Errorf("shard %d: %w", i, err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		coordinateDrain(n, events, func(i int, m drainMsg) {
			b, _ := json.Marshal(m)
			children[i].stdin.Write(append(b, '\n'))
		}, func() {
			for _, c := range children {
				c.stdin.Close()
			}
		})
	}()
	wg.Wait()

	var results []*shardResult
	var errs []error
	for _, c := range children {
		if c.result != nil {
			results = append(results, c.result)
		}
		if c.err != nil {
			errs = append(errs, c.err)
		}
	}
	return results, errors.Join(errs...)
}

// shardEvent is what the coordinator hears of child i: its drain request, its online
// check done, or its exit.
type shardEvent struct {
	i     int
	drain *drainMsg
	check bool
	exit  bool
}

// coordinateDrain runs the two barriers of a sharded drain over n children. Once every
// child has asked (a drain event) or exited, it answers each child that asked and is
// still there with the run-wide drainMsg; once every child has checked or exited, it
// releases them all (the parent closes their stdin). An answer or a release is never
// given early: a child that exits counts for both barriers.
func coordinateDrain(n int, events <-chan shardEvent, answer func(i int, all drainMsg), release func()) {
	defer release()
	asked := make([]bool, n)
	gone := make([]bool, n) // exited, or checked
	var all drainMsg
	for seen := 0; seen < n; {
		ev := <-events
		switch {
		case ev.drain != nil:
			all.MaxSeq = max(all.MaxSeq, ev.drain.MaxSeq)
			all.MaxPin = max(all.MaxPin, ev.drain.MaxPin)
			all.Online += ev.drain.Online
			asked[ev.i] = true
			seen++
		case ev.check:
			gone[ev.i] = true // a check comes after an answer, but a child may lie
		case ev.exit:
			if !asked[ev.i] {
				seen++
			}
			gone[ev.i] = true
		}
	}
	for i := range n {
		if asked[i] && !gone[i] {
			answer(i, all)
		}
	}
	for slices.Contains(gone, false) {
		if ev := <-events; ev.check || ev.exit {
			gone[ev.i] = true
		}
	}
}

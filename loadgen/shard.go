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
// shard drains until the last line and pin stored by any shard have arrived.

type childMsg struct {
	Tick   *tick        `json:"tick,omitempty"`
	Drain  *drainMsg    `json:"drain,omitempty"`
	Result *shardResult `json:"result,omitempty"`
	Error  string       `json:"error,omitempty"`
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
	// either asked or exited.
	type drainReq struct {
		i int
		m drainMsg
	}
	drains := make(chan drainReq, n)
	exits := make(chan int, n)
	var wg sync.WaitGroup
	for i, c := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dec := json.NewDecoder(c.stdout)
			asked := false
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
				case m.Drain != nil:
					asked = true
					drains <- drainReq{i, *m.Drain}
				case m.Result != nil:
					c.result = m.Result
					if m.Error != "" {
						c.err = fmt.Errorf("shard %d: %s", i, m.Error)
					}
				}
			}
			if !asked {
				exits <- i
			}
			agg.shardGone() // it sends no more ticks: stop waiting for them
			if err := c.cmd.Wait(); err != nil && c.err == nil {
				c.err = fmt.Errorf("shard %d: %w", i, err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var all drainMsg
		var waiting []int
		for seen := 0; seen < n; seen++ {
			select {
			case d := <-drains:
				all.MaxSeq = max(all.MaxSeq, d.m.MaxSeq)
				all.MaxPin = max(all.MaxPin, d.m.MaxPin)
				all.Online += d.m.Online
				waiting = append(waiting, d.i)
			case <-exits:
			}
		}
		b, _ := json.Marshal(all)
		for _, i := range waiting {
			children[i].stdin.Write(append(b, '\n'))
		}
		for _, c := range children {
			c.stdin.Close()
		}
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

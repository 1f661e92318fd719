// Command liveroom is the one binary of liveroom: `liveroom serve` runs a whole room
// server on one machine (embedded NATS, gateway, media, web pages); the other
// subcommands run the pieces apart or drive them.
//
// Flags live only here: each subcommand reads its flags into the package's Config,
// calls New, then Run, and stops on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: its one-line summary and its entry point.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"serve":    {"run everything on one machine: embedded NATS, gateway, web pages", runServe},
	"gateway":  {"run one more edge gateway on an existing NATS", runGateway},
	"token":    {"mint a signed token for tests and demos", runToken},
	"shop-sim": {"example shop backend: consume flash-sale orders (LR_ORDERS) at its own pace", runShopSim},
	"loadgen":  {"replay the seed's 22k-viewer room against gateways and report", runLoadgen},
	"media":    {"run the WHIP/WHEP media server alone", runMedia},
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	cmd, ok := commands[name]
	if !ok {
		if name != "-h" && name != "--help" && name != "help" {
			fmt.Fprintf(os.Stderr, "liveroom: unknown command %q\n\n", name)
		}
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "liveroom %s: %v\n", name, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: liveroom <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'liveroom <command> -h' for its flags.")
}

// envOr returns the environment variable's value, or def when it is unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// Package netnstest runs a test inside a network namespace of its own.
//
// WebRTC clients that leave loopback out of their ICE candidates (Chromium, libnice
// and so GStreamer's webrtcbin) need a real interface to talk to an in-process
// server, and the machine's real interface must never be a target. Run makes a
// namespace with lo up and a veth pair whose two ends are both inside it, on
// ServerAddr and PeerAddr (a /24 that routes nowhere else), and re-executes the
// running test binary inside it to run the same test again; there InChild is true and
// the test does its real work. The parent only creates the namespace, relays the
// child's output to its log, and removes the namespace at the end.
//
//	func TestX(t *testing.T) {
//		if netnstest.InChild(t) {
//			runX(t) // servers and clients, all inside the namespace
//			return
//		}
//		if why := netnstest.Unavailable(); why != "" {
//			t.Skip(why)
//		}
//		netnstest.Run(t, 3*time.Minute)
//	}
//
// Needs root and the ip command (iproute2). Only top-level tests can be re-run this
// way (the child is selected with -test.run).
package netnstest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The veth pair's addresses inside the namespace.
const (
	ServerAddr = "10.203.0.1"
	PeerAddr   = "10.203.0.2"
)

// childEnv holds, in the re-executed child, the name of the test it runs.
const childEnv = "LIVEROOM_NETNS_CHILD"

// InChild reports whether this process is the copy of the test binary that Run
// started inside a namespace to run t.
func InChild(t *testing.T) bool { return os.Getenv(childEnv) == t.Name() }

// Unavailable says why Run cannot work here (not root, no ip command), or "" when it
// can.
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "needs root to create a network namespace (ip netns)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "no ip command (apt-get install iproute2)"
	}
	return ""
}

// Run creates a namespace, runs the test binary's test t in it with env added to
// this process's environment, logs the child's output through t, and fails t if the
// child fails. The child gets -test.timeout=timeout and is killed, with every process
// it started (they share its process group), 30 s after that at the latest, and in
// any case when it ends. The namespace is removed when t ends.
func Run(t *testing.T, timeout time.Duration, env ...string) {
	t.Helper()
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	ns := newNetns(t, ip)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", ns, exe,
		"-test.run", "^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1", "-test.timeout="+timeout.String())
	cmd.Env = append(append(os.Environ(), childEnv+"="+t.Name()), env...)
	// The child and what it starts (a browser, a client) share a process group: on
	// timeout or at the end, kill the group so that nothing outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		t.Log("child: " + sc.Text())
	}
	err = cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // strays, if any; the group is ours
	if err != nil {
		t.Fatalf("%s in namespace %s failed: %v", t.Name(), ns, err)
	}
}

// newNetns creates the namespace with lo up and the veth pair, both ends inside it.
// Removed at cleanup.
func newNetns(t *testing.T, ip string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "lrtest-" + hex.EncodeToString(b)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("removing namespace %s: %v\n%s", ns, err, out)
		}
	})
	run("-n", ns, "link", "set", "lo", "up")
	run("-n", ns, "link", "add", "lr0", "type", "veth", "peer", "name", "lr1")
	run("-n", ns, "addr", "add", ServerAddr+"/24", "dev", "lr0")
	run("-n", ns, "addr", "add", PeerAddr+"/24", "dev", "lr1")
	run("-n", ns, "link", "set", "lr0", "up")
	run("-n", ns, "link", "set", "lr1", "up")
	return ns
}

package symbolize

import (
	"encoding/hex"
	"path/filepath"
	"testing"
)

// cProgram prints an address inside close_without_draining (as if it
// were the instruction pointer of a close() there) and its return address
// in main.
const cProgram = `#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) void close_without_draining(void)
{
	printf("ip %p\n", (void *)((char *)close_without_draining + 4));
	printf("ret %p\n", __builtin_return_address(0));
	printf("ready\n");
	fflush(stdout);
	char c;
	if (read(0, &c, 1) < 0)
		perror("read");
}

int main(void)
{
	close_without_draining();
	return 0;
}
`

func TestCProgram(t *testing.T) {
	requireGCC(t)
	dir := build(t, map[string]string{"closer.c": cProgram}, "gcc", "-O1", "-g", "-fno-omit-frame-pointer", "-o", "closer", "closer.c")
	build(t, nil, "strip", "-o", filepath.Join(dir, "closer-stripped"), filepath.Join(dir, "closer"))
	for _, tc := range []struct {
		name     string
		bin      string
		funcs    []string
		stripped bool
	}{
		{"with symbols", filepath.Join(dir, "closer"), []string{"close_without_draining", "main"}, false},
		{"stripped", filepath.Join(dir, "closer-stripped"), []string{"", ""}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := start(t, tc.bin)
			id := gnuBuildID(t, tc.bin)
			if tc.stripped && id != gnuBuildID(t, filepath.Join(dir, "closer")) {
				t.Fatal("strip changed the build id")
			}
			ips := []uint64{c.hex(t, "ip", 1), c.hex(t, "ret", 1)}
			var byID, byIP []RawFrame
			for _, ip := range ips {
				byID = append(byID, kernelFrame(t, c.pid(), ip, id))
				byIP = append(byIP, RawFrame{IP: ip})
			}
			check := func(mode string, got []Frame) {
				t.Helper()
				for i, f := range got {
					want := Frame{Func: tc.funcs[i], Module: tc.bin, Offset: byID[i].Offset, BuildID: hex.EncodeToString(id[:])}
					if f != want {
						t.Errorf("%s: frame %d = %+v, want %+v", mode, i, f, want)
					}
				}
			}
			check("build id", New(Options{}).Symbolize(c.pid(), byID))
			check("ip", New(Options{}).Symbolize(c.pid(), byIP))
			s := New(Options{})
			s.Learn(c.pid())
			c.exit(t)
			check("build id after exit", s.Symbolize(c.pid(), byID))
			check("ip after exit", s.Symbolize(c.pid(), byIP))
		})
	}
}

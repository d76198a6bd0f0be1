package testmatrix

import (
	"strings"
	"testing"
)

// stream is test2json output of a run in which a test passed, a subtest
// failed, one was skipped and the last never ended (the binary died).
const stream = `{"Action":"start","Package":"e2e"}
{"Action":"run","Package":"e2e","Test":"TestA"}
{"Action":"output","Package":"e2e","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"e2e","Test":"TestA","Elapsed":1.5}
{"Action":"run","Package":"e2e","Test":"TestB"}
{"Action":"run","Package":"e2e","Test":"TestB/x"}
{"Action":"output","Package":"e2e","Test":"TestB/x","Output":"    b_test.go:12: open collector: kernel lacks tracepoint sock_send_length\n"}
{"Action":"output","Package":"e2e","Test":"TestB/x","Output":"    b_test.go:13: second line\n"}
{"Action":"fail","Package":"e2e","Test":"TestB/x","Elapsed":0.2}
{"Action":"fail","Package":"e2e","Test":"TestB","Elapsed":0.3}
{"Action":"run","Package":"e2e","Test":"TestC"}
{"Action":"output","Package":"e2e","Test":"TestC","Output":"    c_test.go:5: skipped: promtool is not installed\n"}
{"Action":"skip","Package":"e2e","Test":"TestC","Elapsed":0}
{"Action":"run","Package":"e2e","Test":"TestD"}
{"Action":"output","Package":"e2e","Test":"TestD","Output":"panic: test timed out after 1m0s\n"}
`

func TestParse(t *testing.T) {
	res, pkg, err := Parse(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	if pkg != "" {
		t.Errorf("package outcome %q, want none (the stream was cut)", pkg)
	}
	want := []Result{
		{Name: "TestA", Status: Pass, Seconds: 1.5},
		{Name: "TestB", Status: Fail, Seconds: 0.3},
		{Name: "TestB/x", Status: Fail, Seconds: 0.2, Why: "open collector: kernel lacks tracepoint sock_send_length"},
		{Name: "TestC", Status: Skip, Why: "skipped: promtool is not installed"},
		{Name: "TestD", Status: Fail, Why: "did not finish: panic: test timed out after 1m0s"},
	}
	if len(res) != len(want) {
		t.Fatalf("got %d results %+v, want %d", len(res), res, len(want))
	}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("result %d = %+v, want %+v", i, res[i], want[i])
		}
	}
	_, pkg, err = Parse(strings.NewReader(stream + `{"Action":"fail","Package":"e2e","Elapsed":9}` + "\n"))
	if err != nil || pkg != "fail" {
		t.Errorf("package outcome %q (%v), want fail", pkg, err)
	}
	if _, _, err := Parse(strings.NewReader("{not json\n")); err == nil {
		t.Error("broken JSON parsed without error")
	}
}

func TestRender(t *testing.T) {
	cols := []Column{
		{Name: "6.1", Kernel: "6.1.0-56-cloud-amd64", Results: []Result{
			{Name: "TestA", Status: Fail, Why: "kernel lacks tracepoint sock_send_length"},
			{Name: "TestB", Status: Skip, Why: "no promtool"},
		}, Error: "qemu killed after the 1h0m0s timeout"},
		{Name: "host", Kernel: "host", Results: []Result{
			{Name: "TestA", Status: Pass},
			{Name: "TestA/sub", Status: Pass},
			{Name: "TestC", Status: Pass},
		}},
	}
	var b strings.Builder
	if err := Render(&b, cols); err != nil {
		t.Fatal(err)
	}
	want := "| test | 6.1 (6.1.0-56-cloud-amd64) | host |\n" +
		"| --- | --- | --- |\n" +
		"| TestA | FAIL | pass |\n" +
		"| TestA/sub | - | pass |\n" +
		"| TestC | - | pass |\n" + // after what preceded it in its column
		"| TestB | skip | - |\n" +
		"| **total** (pass/fail/skip) | 0/1/1 | 3/0/0 |\n" +
		"\n" +
		"- **6.1**: run incomplete: qemu killed after the 1h0m0s timeout\n" +
		"- **6.1** FAIL `TestA`: kernel lacks tracepoint sock_send_length\n" +
		"- **6.1** skip `TestB`: no promtool\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if !cols[0].Failed() || cols[1].Failed() {
		t.Errorf("Failed() = %v, %v; want true, false", cols[0].Failed(), cols[1].Failed())
	}
}

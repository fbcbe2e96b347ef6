package consultest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAgentsJoinOverWAN starts two datacenters and checks each lists the other, and that a
// killed agent comes back empty on Restart.
func TestAgentsJoinOverWAN(t *testing.T) {
	dc1, dc2 := Start(t, "dc1"), Start(t, "dc2")
	dc1.JoinWAN(dc2)
	body := get(t, "http://"+dc2.HTTPAddr+"/v1/catalog/datacenters")
	if !strings.Contains(body, `"dc1"`) || !strings.Contains(body, `"dc2"`) {
		t.Fatalf("dc2 lists datacenters %s, want dc1 and dc2", body)
	}
	dc1.Kill()
	if _, err := http.Get("http://" + dc1.HTTPAddr + "/v1/status/leader"); err == nil {
		t.Fatal("killed agent still answers")
	}
	dc1.Restart()
	if body := get(t, "http://"+dc1.HTTPAddr+"/v1/status/leader"); len(strings.Trim(body, "\" \n")) == 0 {
		t.Fatalf("restarted agent has no leader: %q", body)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

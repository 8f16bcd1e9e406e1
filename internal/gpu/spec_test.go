package gpu

import "testing"

func TestCheckVisible(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"all", "none", "0", "0,1", " 0, 1 ", "0:1", "0.1", "GPU-5e3b0f2a-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "MIG-GPU-5e3b/1/0"} {
		if err := CheckVisible(ok); err != nil {
			t.Errorf("CheckVisible(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"zzz", "", "0,", "0-3", "-1", "0;1", "gpu0", "all,0"} {
		if err := CheckVisible(bad); err == nil {
			t.Errorf("CheckVisible(%q) accepted", bad)
		}
	}
}

package kubepods

import "testing"

const (
	uid    = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	uidSd  = "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0"
	cid    = "8d5c3e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678901234567890abc"
	cidMix = "8D5C3E8F0A1B2C3D4E5F60718293A4B5C6D7E8F9012345678901234567890ABC"
)

func TestParseCgroupPath(t *testing.T) {
	tests := []struct {
		name string
		path string
		want PathInfo
		ok   bool
	}{
		{"systemd containerd burstable",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSd + ".slice/cri-containerd-" + cid + ".scope",
			PathInfo{uid, cid, RuntimeContainerd}, true},
		{"systemd containerd guaranteed",
			"/kubepods.slice/kubepods-pod" + uidSd + ".slice/cri-containerd-" + cid + ".scope",
			PathInfo{uid, cid, RuntimeContainerd}, true},
		{"systemd cri-o besteffort",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidSd + ".slice/crio-" + cid + ".scope",
			PathInfo{uid, cid, RuntimeCRIO}, true},
		{"systemd cri-o monitor",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidSd + ".slice/crio-conmon-" + cid + ".scope",
			PathInfo{uid, cid, RuntimeCRIO}, true},
		{"systemd docker",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSd + ".slice/docker-" + cid + ".scope",
			PathInfo{uid, cid, RuntimeDocker}, true},
		{"cgroupfs bare id burstable",
			"/kubepods/burstable/pod" + uid + "/" + cid,
			PathInfo{uid, cid, RuntimeUnknown}, true},
		{"cgroupfs bare id guaranteed",
			"/kubepods/pod" + uid + "/" + cid,
			PathInfo{uid, cid, RuntimeUnknown}, true},
		{"cgroupfs cri-o",
			"/kubepods/besteffort/pod" + uid + "/crio-" + cid,
			PathInfo{uid, cid, RuntimeCRIO}, true},
		{"kind node prefix",
			"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidSd + ".slice/cri-containerd-" + cid + ".scope",
			PathInfo{uid, cid, RuntimeContainerd}, true},
		{"nested under a docker node",
			"/docker/" + cid + "/kubepods/burstable/pod" + uid + "/" + cid,
			PathInfo{uid, cid, RuntimeUnknown}, true},
		{"cgroup below the container",
			"/kubepods/burstable/pod" + uid + "/" + cid + "/init.scope",
			PathInfo{uid, cid, RuntimeUnknown}, true},
		{"upper-case id", "/kubepods/pod" + uid + "/" + cidMix, PathInfo{uid, cid, RuntimeUnknown}, true},
		{"pod cgroup itself", "/kubepods/burstable/pod" + uid, PathInfo{PodUID: uid}, true},
		{"no leading slash", "kubepods/pod" + uid + "/" + cid, PathInfo{uid, cid, RuntimeUnknown}, true},
		{"qos cgroup", "/kubepods.slice/kubepods-burstable.slice", PathInfo{}, false},
		{"kubepods root", "/kubepods", PathInfo{}, false},
		{"host service", "/system.slice/containerd.service", PathInfo{}, false},
		{"pod outside kubepods", "/system.slice/pod" + uid + "/" + cid, PathInfo{}, false},
		{"root", "/", PathInfo{}, false},
		{"short uid", "/kubepods/pod0f1e2d3c/" + cid, PathInfo{}, false},
		{"uid without dashes", "/kubepods/pod0f1e2d3c04b5a06978087960a5b4c3d2e1f0/" + cid, PathInfo{}, false},
		{"short container id", "/kubepods/pod" + uid + "/8d5c3e8f", PathInfo{}, false},
		{"not hex container id", "/kubepods/pod" + uid + "/" + cid[:63] + "z", PathInfo{}, false},
		{"unknown container prefix", "/kubepods/pod" + uid + "/lxc-" + cid, PathInfo{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseCgroupPath(tt.path)
			if ok != tt.ok || got != tt.want {
				t.Errorf("ParseCgroupPath(%q) = %+v, %v; want %+v, %v", tt.path, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseCgroupPath(f *testing.F) {
	f.Add("/kubepods/burstable/pod" + uid + "/" + cid)
	f.Add("/kubepods.slice/kubepods-pod" + uidSd + ".slice/cri-containerd-" + cid + ".scope")
	f.Fuzz(func(t *testing.T, path string) {
		info, ok := ParseCgroupPath(path)
		if !ok {
			return
		}
		if !isUID(info.PodUID) {
			t.Errorf("pod uid %q is not a UID", info.PodUID)
		}
		if info.ContainerID != "" && len(info.ContainerID) != 64 {
			t.Errorf("container id %q is not 64 digits", info.ContainerID)
		}
	})
}

package main

// Guest operations (GuestOperationsManager) as ESXi answers them through
// VMware Tools. vcsim 0.24 registers the managers, but its GuestProcessManager
// has no methods and its GuestFileManager only works with a Docker container
// behind the VM (GuestOperationsUnavailable otherwise).
//
// The lab's guest of a VM is a directory: $LAB_GUEST_DIR/<vm name>, else
// guests/<vm name> in the site's work directory. Its "file system" is that
// directory: programs start in it (or in spec.workingDirectory), temporary
// directories are made under its tmp/, and only files inside it can be
// transferred or deleted (GuestPermissionDenied otherwise).
//
//   - Every call needs a powered-on VM (InvalidPowerState), VMware Tools running
//     (GuestOperationsUnavailable, see guestpower.go) and the guest credentials
//     the lab is configured with (InvalidGuestLogin). The default credentials
//     are root / $LAB_GUEST_PASSWORD, else root / the site's login password.
//   - StartProgramInGuest runs `"programPath" arguments` with /bin/sh -c, as
//     open-vm-tools does on Linux (so redirections in the arguments work), as the
//     lab's own user, in its own process group, with a small environment
//     (PATH, HOME = the guest directory, USER, LANG) plus spec.envVariables.
//     It returns the pid at once. A process still running after 15 minutes is
//     killed.
//   - ListProcessesInGuest reports the processes the lab started for the VM
//     (all, or the given pids), with endTime and exitCode once they ended
//     (128 + signal for a killed process).
//   - TerminateProcessInGuest kills the process group (GuestProcessNotFound for
//     an unknown pid).
//   - CreateTemporaryDirectoryInGuest, DeleteDirectoryInGuest.
//   - InitiateFileTransferFromGuest returns size and an URL
//     https://<host:port>/guestFile?token=T valid for 10 minutes; GET on it
//     serves the file (no session needed, like ESXi's ticket).
//   - CreateSnapshot_Task with quiesce=true fails with ApplicationQuiesceFault
//     when the lab plays a guest whose quiescing fails (quiesce=fail below).
//
// Control endpoint:
//   GET  /lab/guestops?vm=NAME   the guest directory, user name, quiesce knob, processes
//   POST /lab/guestops?vm=NAME[&username=U&password=P][&quiesce=fail|ok]

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	guestFilePath     = "/guestFile"
	guestProcMaxLife  = 15 * time.Minute
	guestTransferLife = 10 * time.Minute
	guestDefaultUser  = "root"
)

// guestProcessInfo is types.GuestProcessInfo with exitCode always sent once the
// process ended (govmomi's type omits a zero exit code).
type guestProcessInfo struct {
	Name      string     `xml:"name"`
	Pid       int64      `xml:"pid"`
	Owner     string     `xml:"owner"`
	CmdLine   string     `xml:"cmdLine"`
	StartTime time.Time  `xml:"startTime"`
	EndTime   *time.Time `xml:"endTime,omitempty"`
	ExitCode  *int32     `xml:"exitCode,omitempty"`
}

type guestProc struct {
	info guestProcessInfo
	pgid int
}

type guestCreds struct{ user, password string }

type guestTransfer struct {
	path    string
	expires time.Time
}

var gops = struct {
	sync.Mutex
	creds        map[string]guestCreds           // by VM moid; unset: the default
	quiesceFail  map[string]bool                 // by VM moid
	procs        map[string]map[int64]*guestProc // VM moid -> pid -> process
	transfers    map[string]guestTransfer        // token -> file
	shutdownOnce sync.Once
}{
	creds:       map[string]guestCreds{},
	quiesceFail: map[string]bool{},
	procs:       map[string]map[int64]*guestProc{},
	transfers:   map[string]guestTransfer{},
}

func guestRoot() string {
	if d := os.Getenv("LAB_GUEST_DIR"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		wd = "."
	}
	return filepath.Join(wd, "guests")
}

func guestDir(vm *simulator.VirtualMachine) string {
	return filepath.Join(guestRoot(), vm.Name)
}

func credsOf(ref types.ManagedObjectReference) guestCreds {
	gops.Lock()
	defer gops.Unlock()
	if c, ok := gops.creds[ref.Value]; ok {
		return c
	}
	password := os.Getenv("LAB_GUEST_PASSWORD")
	if password == "" {
		password = os.Getenv("LAB_PASSWORD")
	}
	return guestCreds{user: guestDefaultUser, password: password}
}

// killGuestProcessesOnExit kills every process group the lab started when labd
// is asked to stop (main stops on the same signals).
func killGuestProcessesOnExit() {
	gops.shutdownOnce.Do(func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			<-sig
			gops.Lock()
			for _, procs := range gops.procs {
				for _, p := range procs {
					if p.info.EndTime == nil {
						_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
					}
				}
			}
			gops.Unlock()
		}()
	})
}

// guestFault is a fault with the text ESXi sends with it.
type guestFault struct {
	msg   string
	fault types.BaseMethodFault
}

func guestErr(msg string, fault types.BaseMethodFault) *guestFault { return &guestFault{msg, fault} }

// prepareGuest checks what ESXi checks before any guest operation.
func prepareGuest(ref types.ManagedObjectReference, auth types.BaseGuestAuthentication) (*simulator.VirtualMachine, *guestFault) {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		f := &types.ManagedObjectNotFound{Obj: ref}
		return nil, guestErr(faultText(f), f)
	}
	var power types.VirtualMachinePowerState
	var tools string
	simulator.Map.WithLock(vm, func() {
		power = vm.Runtime.PowerState
		if vm.Guest != nil {
			tools = vm.Guest.ToolsRunningStatus
		}
	})
	if power != types.VirtualMachinePowerStatePoweredOn {
		return nil, guestErr("The attempted operation cannot be performed in the current state ("+string(power)+").",
			&types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOn, ExistingState: power})
	}
	if tools != string(types.VirtualMachineToolsRunningStatusGuestToolsRunning) {
		return nil, guestErr("The guest operations agent could not be contacted.", &types.GuestOperationsUnavailable{})
	}
	want := credsOf(ref)
	login, ok := auth.(*types.NamePasswordAuthentication)
	if !ok || login.Username != want.user || login.Password != want.password || want.password == "" {
		return nil, guestErr("Failed to authenticate with the guest operating system using the supplied credentials.",
			&types.InvalidGuestLogin{})
	}
	dir := guestDir(vm)
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, guestErr("A general system error occurred: "+err.Error(), &types.SystemError{Reason: err.Error()})
	}
	return vm, nil
}

// insideGuest resolves a guest path; only paths inside the guest directory are the guest's.
func insideGuest(vm *simulator.VirtualMachine, p string) (string, *guestFault) {
	dir := guestDir(vm)
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	p = filepath.Clean(p)
	if p != dir && !strings.HasPrefix(p, dir+string(os.PathSeparator)) {
		return "", guestErr("Insufficient permissions in guest operating system.", &types.GuestPermissionDenied{})
	}
	return p, nil
}

func fileNotFound(p string) *guestFault {
	return guestErr("File "+p+" was not found", &types.FileNotFound{FileFault: types.FileFault{File: p}})
}

// serveGuestOps answers the guest operations and the quiesce knob of
// CreateSnapshot_Task; false for any other method.
func (f *front) serveGuestOps(w http.ResponseWriter, r *http.Request, name string, method *simulator.Method) bool {
	var val interface{}
	var gf *guestFault
	switch req := method.Body.(type) {
	case *types.CreateSnapshot_Task:
		return f.lab.failQuiesce(w, r, name, req)
	case *types.StartProgramInGuest:
		val, gf = startProgram(req)
	case *types.ListProcessesInGuest:
		val, gf = listProcesses(req)
	case *types.TerminateProcessInGuest:
		gf = terminateProcess(req)
	case *types.CreateTemporaryDirectoryInGuest:
		val, gf = createTempDir(req)
	case *types.DeleteDirectoryInGuest:
		gf = deleteDir(req)
	case *types.InitiateFileTransferFromGuest:
		val, gf = transferFromGuest(req, r.Host)
	default:
		return false
	}
	if !authenticated(r) {
		writeFault(w, "not authenticated", &types.NotAuthenticated{})
		return true
	}
	if gf != nil {
		writeFault(w, gf.msg, gf.fault)
		return true
	}
	writeResult(w, name, val)
	return true
}

func startProgram(req *types.StartProgramInGuest) (interface{}, *guestFault) {
	vm, gf := prepareGuest(req.Vm, req.Auth)
	if gf != nil {
		return nil, gf
	}
	spec := req.Spec.GetGuestProgramSpec()
	if spec == nil || spec.ProgramPath == "" {
		return nil, guestErr("A specified parameter was not correct: programPath",
			&types.InvalidArgument{InvalidProperty: "programPath"})
	}
	cwd := guestDir(vm)
	if spec.WorkingDirectory != "" {
		if cwd, gf = insideGuest(vm, spec.WorkingDirectory); gf != nil {
			return nil, gf
		}
		if st, err := os.Stat(cwd); err != nil || !st.IsDir() {
			return nil, fileNotFound(spec.WorkingDirectory)
		}
	}
	if _, err := os.Stat(spec.ProgramPath); err != nil {
		return nil, fileNotFound(spec.ProgramPath)
	}
	line := `"` + spec.ProgramPath + `" ` + spec.Arguments
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Dir = cwd
	user := credsOf(req.Vm).user
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + guestDir(vm),
		"USER=" + user, "LOGNAME=" + user, "LANG=C.UTF-8"}, spec.EnvVariables...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	devnull, err := os.Open(os.DevNull)
	if err == nil {
		defer devnull.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	}
	if err := cmd.Start(); err != nil {
		return nil, guestErr("A general system error occurred: "+err.Error(), &types.SystemError{Reason: err.Error()})
	}
	killGuestProcessesOnExit()
	pid := int64(cmd.Process.Pid)
	p := &guestProc{pgid: cmd.Process.Pid, info: guestProcessInfo{
		Name: filepath.Base(spec.ProgramPath), Pid: pid, Owner: user, CmdLine: line, StartTime: time.Now().UTC()}}
	gops.Lock()
	if gops.procs[vm.Self.Value] == nil {
		gops.procs[vm.Self.Value] = map[int64]*guestProc{}
	}
	gops.procs[vm.Self.Value][pid] = p
	gops.Unlock()
	go func() {
		timer := time.AfterFunc(guestProcMaxLife, func() { _ = syscall.Kill(-p.pgid, syscall.SIGKILL) })
		_ = cmd.Wait()
		timer.Stop()
		code := int32(cmd.ProcessState.ExitCode())
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int32(ws.Signal())
		}
		end := time.Now().UTC()
		gops.Lock()
		p.info.EndTime, p.info.ExitCode = &end, &code
		gops.Unlock()
	}()
	return pid, nil
}

func listProcesses(req *types.ListProcessesInGuest) (interface{}, *guestFault) {
	vm, gf := prepareGuest(req.Vm, req.Auth)
	if gf != nil {
		return nil, gf
	}
	gops.Lock()
	defer gops.Unlock()
	procs := gops.procs[vm.Self.Value]
	var out []guestProcessInfo
	if len(req.Pids) > 0 {
		for _, pid := range req.Pids {
			if p := procs[pid]; p != nil {
				out = append(out, p.info)
			}
		}
	} else {
		for _, p := range procs {
			out = append(out, p.info)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Pid < out[j].Pid })
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func terminateProcess(req *types.TerminateProcessInGuest) *guestFault {
	vm, gf := prepareGuest(req.Vm, req.Auth)
	if gf != nil {
		return gf
	}
	gops.Lock()
	p := gops.procs[vm.Self.Value][req.Pid]
	running := p != nil && p.info.EndTime == nil
	gops.Unlock()
	if !running {
		return guestErr("The specified process could not be found", &types.GuestProcessNotFound{Pid: req.Pid})
	}
	_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
	return nil
}

func createTempDir(req *types.CreateTemporaryDirectoryInGuest) (interface{}, *guestFault) {
	vm, gf := prepareGuest(req.Vm, req.Auth)
	if gf != nil {
		return nil, gf
	}
	parent := filepath.Join(guestDir(vm), "tmp")
	if req.DirectoryPath != "" {
		if parent, gf = insideGuest(vm, req.DirectoryPath); gf != nil {
			return nil, gf
		}
	}
	dir, err := os.MkdirTemp(parent, req.Prefix+"*"+req.Suffix)
	if err != nil {
		return nil, fileNotFound(parent)
	}
	return dir, nil
}

func deleteDir(req *types.DeleteDirectoryInGuest) *guestFault {
	vm, gf := prepareGuest(req.Vm, req.Auth)
	if gf != nil {
		return gf
	}
	p, gf := insideGuest(vm, req.DirectoryPath)
	if gf != nil {
		return gf
	}
	if st, err := os.Stat(p); err != nil || !st.IsDir() || p == guestDir(vm) {
		return fileNotFound(req.DirectoryPath)
	}
	var err error
	if req.Recursive {
		err = os.RemoveAll(p)
	} else {
		err = os.Remove(p)
	}
	if err != nil {
		return guestErr("The directory "+req.DirectoryPath+" is not empty",
			&types.DirectoryNotEmpty{FileFault: types.FileFault{File: req.DirectoryPath}})
	}
	return nil
}

func transferFromGuest(req *types.InitiateFileTransferFromGuest, host string) (interface{}, *guestFault) {
	vm, gf := prepareGuest(req.Vm, req.Auth)
	if gf != nil {
		return nil, gf
	}
	p, gf := insideGuest(vm, req.GuestFilePath)
	if gf != nil {
		return nil, gf
	}
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return nil, fileNotFound(req.GuestFilePath)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	now := time.Now()
	gops.Lock()
	for t, x := range gops.transfers {
		if now.After(x.expires) {
			delete(gops.transfers, t)
		}
	}
	gops.transfers[token] = guestTransfer{path: p, expires: now.Add(guestTransferLife)}
	gops.Unlock()
	mtime := st.ModTime().UTC()
	return types.FileTransferInformation{
		Attributes: &types.GuestFileAttributes{ModificationTime: &mtime, AccessTime: &mtime},
		Size:       st.Size(),
		Url:        "https://" + host + guestFilePath + "?token=" + token,
	}, nil
}

// serveGuestFile is GET /guestFile?token=T.
func (l *lab) serveGuestFile(w http.ResponseWriter, r *http.Request) {
	gops.Lock()
	x, ok := gops.transfers[r.URL.Query().Get("token")]
	gops.Unlock()
	if !ok || time.Now().After(x.expires) || r.Method != http.MethodGet {
		http.Error(w, "unknown or expired transfer", http.StatusNotFound)
		return
	}
	fh, err := os.Open(x.path)
	if err != nil {
		http.Error(w, "file gone", http.StatusNotFound)
		return
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		http.Error(w, "file gone", http.StatusNotFound)
		return
	}
	http.ServeContent(w, r, filepath.Base(x.path), st.ModTime(), fh)
}

// failQuiesce fails a quiesced CreateSnapshot_Task as ESXi does when the guest
// cannot quiesce; false (vcsim and the snapshot hook run it) otherwise.
func (l *lab) failQuiesce(w http.ResponseWriter, r *http.Request, name string, req *types.CreateSnapshot_Task) bool {
	if !req.Quiesce {
		return false
	}
	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		return false
	}
	gops.Lock()
	fail := gops.quiesceFail[vm.Self.Value]
	gops.Unlock()
	if !fail {
		return false
	}
	if !authenticated(r) {
		writeFault(w, "not authenticated", &types.NotAuthenticated{})
		return true
	}
	const msg = "An error occurred while quiescing the virtual machine. See the virtual machine's event log for details."
	task := simulator.CreateTask(vm, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, &types.ApplicationQuiesceFault{}
	})
	ref := task.Run()
	simulator.Map.WithLock(task, func() {
		if task.Info.Error != nil {
			task.Info.Error.LocalizedMessage = msg
		}
	})
	writeResult(w, name, ref)
	return true
}

// serveGuestOpsControl is GET / POST /lab/guestops.
func (l *lab) serveGuestOpsControl(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	vm, _ := l.vmByName(q.Get("vm"))
	if vm == nil {
		writeJSON(w, 404, map[string]string{"error": "GET or POST /lab/guestops?vm=NAME with an existing VM"})
		return
	}
	if r.Method == http.MethodPost {
		gops.Lock()
		if u, p := q.Get("username"), q.Get("password"); u != "" || p != "" {
			gops.creds[vm.Self.Value] = guestCreds{user: u, password: p}
		}
		switch q.Get("quiesce") {
		case "fail":
			gops.quiesceFail[vm.Self.Value] = true
		case "ok":
			delete(gops.quiesceFail, vm.Self.Value)
		}
		gops.Unlock()
	}
	creds := credsOf(vm.Self)
	gops.Lock()
	var procs []map[string]interface{}
	for _, p := range gops.procs[vm.Self.Value] {
		entry := map[string]interface{}{"pid": p.info.Pid, "cmdline": p.info.CmdLine, "running": p.info.EndTime == nil}
		if p.info.ExitCode != nil {
			entry["exit_code"] = *p.info.ExitCode
		}
		procs = append(procs, entry)
	}
	quiesce := "ok"
	if gops.quiesceFail[vm.Self.Value] {
		quiesce = "fail"
	}
	gops.Unlock()
	writeJSON(w, 200, map[string]interface{}{"vm": vm.Name, "dir": guestDir(vm), "username": creds.user,
		"quiesce": quiesce, "processes": procs})
}

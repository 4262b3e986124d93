"""Kernels forked from the zygote behave like freshly started ones."""

import os
import signal
import subprocess
import time

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config

from nncourse.sandbox import Sandbox, Zygote
from nncourse.sandbox.manager import ForkedKernelManager

pytestmark = [pytest.mark.sandbox]


@pytest.fixture(scope="module")
def zygote():
    zygote = Zygote()
    yield zygote
    zygote.close()


def run(zygote, cells, tmp_path, timeout=60, manager=ForkedKernelManager):
    config = Config()
    config.ForkedKernelManager.zygote_socket = zygote.socket_path
    notebook = new_notebook(cells=[new_code_cell(source) for source in cells])
    client = NotebookClient(notebook, timeout=timeout, allow_errors=True, config=config,
                            kernel_manager_class=manager,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return notebook


def outputs(notebook):
    return [[{k: v for k, v in output.items() if k not in ("execution_count", "metadata")}
             for output in cell.outputs] for cell in notebook.cells]


CELLS = [
    "import os, sys\nprint('out'); print('err', file=sys.stderr)",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]); plt.show()",
    "import numpy as np, torch\nfloat(np.ones(3).sum() + torch.ones(2).sum())",
    "open('model.txt', 'w').write('saved'); open('model.txt').read()",
    "os.environ['NBGRADER_EXECUTION'], os.path.basename(os.getcwd())",
    "1 / 0",
    "'still running'",
]


def test_a_forked_kernel_gives_the_outputs_of_a_fresh_kernel(zygote, tmp_path, monkeypatch):
    from jupyter_client.manager import AsyncKernelManager
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # a variable kernels are given
    for kind in ("fresh", "forked"):
        (tmp_path / kind / "work").mkdir(parents=True)
    fresh = run(zygote, CELLS, tmp_path / "fresh" / "work", manager=AsyncKernelManager)
    forked = run(zygote, CELLS, tmp_path / "forked" / "work")
    assert outputs(forked) == outputs(fresh)
    kinds = [[o.get("output_type") for o in cell] for cell in outputs(forked)]
    assert kinds[0] == ["stream", "stream"] and "image/png" in forked.cells[1].outputs[0].data
    assert forked.cells[4].outputs[0].data["text/plain"] == "('autograde', 'work')"
    assert kinds[5] == ["error"] and kinds[6] == ["execute_result"]


def test_a_cell_past_its_time_is_interrupted_and_the_kernel_goes_on(zygote, tmp_path):
    from nbgrader.preprocessors import Execute
    notebook = new_notebook(cells=[new_code_cell("import time\ntime.sleep(60)"),
                                   new_code_cell("'alive'")])
    config = Config()
    config.ForkedKernelManager.zygote_socket = zygote.socket_path
    execute = Execute(config=config, timeout=2, kernel_manager_class=ForkedKernelManager)
    start = time.perf_counter()
    notebook, _ = execute.preprocess(notebook, {"metadata": {"path": str(tmp_path)}})
    assert time.perf_counter() - start < 30
    assert notebook.cells[0].outputs[-1].ename in ("CellTimeoutError", "KeyboardInterrupt")
    assert notebook.cells[1].outputs[0].data["text/plain"] == "'alive'"


def test_each_kernel_starts_from_fresh_random_state(zygote, tmp_path):
    draws = [run(zygote, ["import numpy as np, random\n(np.random.rand(), random.random())"],
                 tmp_path).cells[0].outputs[0].data["text/plain"] for _ in range(2)]
    assert draws[0] != draws[1]


def test_killing_the_launcher_kills_the_kernel(zygote, tmp_path):
    import asyncio
    config = Config()
    config.ForkedKernelManager.zygote_socket = zygote.socket_path

    async def start_and_kill():
        manager = ForkedKernelManager(config=config)
        await manager.start_kernel(cwd=str(tmp_path))
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=30)
        reply = await client.execute_interactive("import os; print(os.getpid())", timeout=30,
                                                 output_hook=lambda msg: pids.append(msg))
        assert reply["content"]["status"] == "ok"
        client.stop_channels()
        os.kill(manager.provisioner.process.pid, signal.SIGKILL)  # the launcher
        await manager.provisioner.wait()

    pids = []
    asyncio.run(start_and_kill())
    kernel = int(next(m for m in pids if m["msg_type"] == "stream")["content"]["text"])
    for _ in range(100):
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the kernel outlived its launcher")


def test_the_zygote_ends_with_its_owner(tmp_path):
    zygote = Zygote()
    process = zygote.process
    zygote.close()
    assert process.poll() is not None and not os.path.exists(zygote.socket_path)


def test_kernels_talk_over_unix_sockets_in_the_zygotes_folder(zygote, tmp_path):
    # TCP ports are picked by the client and bound later by the kernel; with kernels starting
    # in several workers at once another process could take one in between.
    notebook = run(zygote, ["import json, ipykernel.connect\n"
                            "info = json.load(open(ipykernel.connect.get_connection_file()))\n"
                            "info['transport'], info['ip']"], tmp_path)
    transport, ip = eval(notebook.cells[0].outputs[0]["data"]["text/plain"])
    assert transport == "ipc"
    # in a folder of its own beside the zygote's socket, gone with the kernel
    kernel_folder = os.path.dirname(ip)
    assert os.path.dirname(kernel_folder) == os.path.dirname(zygote.socket_path)
    assert not os.path.exists(kernel_folder)


@pytest.mark.skipif(Sandbox.unavailable() is not None, reason="no sandbox here")
def test_a_sandboxed_kernel_works_and_sees_only_its_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "digits.txt").write_text("0123456789")
    secret = tmp_path / "source.ipynb"  # stands for the course's files
    secret.write_text("solutions")
    zygote = Zygote(sandbox=Sandbox(read_only=[str(data)]))
    try:
        work = zygote.job_folder()
        with open(os.path.join(work, "given.txt"), "w") as out:
            out.write("shipped with the assignment")
        notebook = run(zygote, [
            "import os, socket, torch\nopen('given.txt').read()",
            "open(%r).read()" % str(data / "digits.txt"),
            "torch.save(torch.arange(3), 'model.pt'); torch.load('model.pt').tolist()",
            "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()",
            "open(%r).read()" % str(secret),
            "open(%r, 'w')" % str(data / "planted.txt"),
            "socket.create_connection(('1.1.1.1', 53), timeout=2)",
            "sorted(os.listdir('/tmp'))",
            "import nncourse",  # the grader's package (the hidden checks) is not there
        ], work)
    finally:
        zygote.close()
    results = outputs(notebook)
    assert results[0][0]["data"]["text/plain"] == "'shipped with the assignment'"
    assert results[1][0]["data"]["text/plain"] == "'0123456789'"
    assert results[2][0]["data"]["text/plain"] == "[0, 1, 2]"
    assert results[3][0]["output_type"] == "display_data"
    assert results[4][0]["ename"] == "FileNotFoundError"  # the course is not there
    assert results[5][0]["ename"] == "OSError"  # the data is read-only
    assert results[6][0]["ename"] == "OSError"  # no network
    # its own /tmp: the way to its own folders, the data, nothing of other kernels or the host
    visible = eval(results[7][0]["data"]["text/plain"])
    assert sorted(visible) == sorted({os.path.basename(zygote.folder),
                                      str(data).split("/")[2]})
    assert not (data / "planted.txt").exists()
    assert results[8][0]["ename"] == "ModuleNotFoundError"


@pytest.mark.skipif(Sandbox.unavailable() is not None, reason="no sandbox here")
def test_the_sandboxs_limits_are_settings_of_the_course_config(tmp_path):
    config = Config()
    config.Sandbox.file_mb = 1
    config.Sandbox.tmp_mb = 4
    # a worker builds its zygote's sandbox from the course's configuration
    from nncourse.autograde import worker
    zygote = worker._worker_zygote(True, str(tmp_path), config)
    try:
        assert zygote.sandbox.limits["file_mb"] == 1 and zygote.sandbox.tmp_mb == 4
        notebook = run(zygote, [
            "open('small.bin', 'wb').write(bytes(2**19))",
            "open('big.bin', 'wb').write(bytes(2 * 2**20))",
            "open('/tmp/a.bin', 'wb').write(bytes(2**20)); open('/tmp/b.bin', 'wb').write(bytes(2**20))",
            "for name in 'cde':\n    open('/tmp/' + name, 'wb').write(bytes(900 * 2**10))",
        ], zygote.job_folder())
    finally:
        worker._close_zygote()
        worker._zygote = None
    results = outputs(notebook)
    assert results[0][0]["data"]["text/plain"] == str(2**19)
    assert results[1][0]["ename"] == "OSError" and "too large" in results[1][0]["evalue"]
    assert "ename" not in results[2][0]  # 2 MB of the 4 MB /tmp
    assert results[3][0]["ename"] == "OSError" and "No space left" in results[3][0]["evalue"]


def test_a_forked_kernel_sees_only_the_allowed_part_of_the_environment(zygote, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("NNCOURSE_GRADER_SECRET", "not for students")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    (tmp_path / "work").mkdir()
    outputs_ = outputs(run(zygote, ["import os\nsorted(os.environ)"], tmp_path / "work"))
    names = outputs_[0][0]["data"]["text/plain"]
    assert "NBGRADER_EXECUTION" in names and "NNCOURSE_GRADER_SECRET" not in names



ATTACKER = [
    # every process it can see: signals, /proc/PID/mem, ptrace
    """import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
killed, opened, traced = [], [], []
for name in os.listdir('/proc'):
    # /proc numbers processes as the zygote sees them; a signal is sent by the numbers of
    # the kernel's own namespace (where such a number can only be one of its own threads)
    if not name.isdigit() or os.path.exists('/proc/self/task/' + name):
        continue
    try:
        os.kill(int(name), signal.SIGKILL)
        killed.append(int(name))
    except OSError:
        pass
    try:
        open('/proc/%s/mem' % name, 'r+b').close()
        opened.append(name)
    except OSError:
        pass
    if libc.ptrace(16, int(name), None, None) == 0:  # PTRACE_ATTACH
        traced.append(name)
os.getpid(), killed, opened, traced""",
    # processes left behind on purpose, in a session of their own
    "import subprocess\n[subprocess.Popen(['sleep', '6062'], start_new_session=True).pid"
    " for _ in range(3)][:0]",
    # fill /dev/shm and the job folder
    """def fill(folder, megabytes):
    written = 0
    try:
        for number in range(megabytes // 64):
            with open(os.path.join(folder, 'fill-%d' % number), 'wb') as out:
                out.write(b'x' * 64 * 2**20)
            written += 64
    except OSError:
        pass
    return written
fill('/dev/shm', 1024), fill('.', 2048)""",
]


@pytest.mark.skipif(Sandbox.unavailable() is not None, reason="no sandbox here")
def test_a_sandboxed_kernel_cannot_reach_its_neighbour_or_outlive_itself(tmp_path):
    import threading
    zygote = Zygote(sandbox=Sandbox())
    try:
        victim_work, attacker_work = zygote.job_folder(), zygote.job_folder()
        victim = {}

        def run_victim():
            victim["notebook"] = run(zygote, [
                "import os, time\ntime.sleep(15)\nsorted(os.listdir('/dev/shm'))",
                "'still here'"], victim_work, timeout=90)

        thread = threading.Thread(target=run_victim)
        thread.start()
        time.sleep(4)  # the victim's kernel is up and sleeping
        attacker = outputs(run(zygote, ATTACKER, attacker_work, timeout=90))
        thread.join()
        after = outputs(run(zygote, ["'a next kernel'"], zygote.job_folder()))
    finally:
        zygote.close()
    pid, _, opened, traced = eval(attacker[0][0]["data"]["text/plain"])
    assert pid == 1 and opened == [] and traced == []
    assert after[0][0]["data"]["text/plain"] == "'a next kernel'"  # the zygote is unharmed
    shm, job = eval(attacker[2][0]["data"]["text/plain"])
    assert shm <= 256 and job <= 512  # the sandbox's sizes of /dev/shm and the job folder
    assert outputs(victim["notebook"])[0][0]["data"]["text/plain"] == "[]"
    assert outputs(victim["notebook"])[1][0]["data"]["text/plain"] == "'still here'"
    survivors = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "sleep 6062" not in survivors


@pytest.mark.skipif(Sandbox.unavailable() is not None, reason="no sandbox here")
def test_a_sandboxed_kernel_owns_nothing_of_the_host():
    from nncourse.sandbox.walls import KERNEL_IDS
    zygote = Zygote(sandbox=Sandbox())
    try:
        work = zygote.job_folder()
        results = outputs(run(zygote, [
            "import os\nos.getuid(), os.getgid(), os.getgroups()",
            "open('/etc/passwd').read().splitlines()",
            "'shadow' in os.listdir('/etc'), os.path.exists('/etc/hostname')",
            "open('own.txt', 'w').write('mine'); open('own.txt').read()",
            "import torch, matplotlib.pyplot\n'libraries load'",
        ], work))
    finally:
        zygote.close()
    uid, gid, groups = eval(results[0][0]["data"]["text/plain"])
    if os.getuid() == 0:  # a grader run as root gives each kernel a user of its own
        first, count = KERNEL_IDS
        assert first <= uid < first + count and gid == uid and groups == []
    else:
        assert (uid, gid) == (os.getuid(), os.getgid())
    users = [line.split(":")[0] for line in eval(results[1][0]["data"]["text/plain"])]
    assert users == ["root", "nobody"]  # not the host's list of users
    assert results[2][0]["data"]["text/plain"] == "(False, False)"
    assert results[3][0]["data"]["text/plain"] == "'mine'"
    assert results[4][0]["data"]["text/plain"] == "'libraries load'"

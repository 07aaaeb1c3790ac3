//! Seccomp: compiles the spec's `linux.seccomp` section into a classic BPF
//! program ourselves (no libseccomp), caches compiled programs by a hash of
//! the profile, and provides Docker's default profile as data.
//!
//! The program checks the audit architecture first: only native x86_64
//! system calls are matched against the rules; any other ABI (i386 via
//! `int 0x80`, x32) gets the default action, which is stricter than Docker
//! (that also allows the 32-bit table) and never weaker.

mod default;
#[cfg(target_arch = "x86_64")]
mod syscalls_x86_64;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator};
use sha2::{Digest, Sha256};

pub use crate::sys::SockFilter;
pub use default::docker_default;

/// Why a profile cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile asks for something this compiler does not do.
    #[error("linux.seccomp: {0}")]
    Unsupported(String),
    /// The program would exceed the kernel's 4096-instruction limit.
    #[error(
        "linux.seccomp: the compiled filter has {0} instructions, more than the kernel's 4096"
    )]
    TooLarge(usize),
    /// This CPU architecture has no syscall table here.
    #[error("seccomp is only supported on x86_64 by this runtime")]
    Arch,
    /// Reading or writing the cache failed.
    #[error("seccomp cache {path}: {source}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// BPF opcodes (linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_RET_K: u16 = 0x06;

// Offsets in struct seccomp_data.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// The number of a system call on this architecture.
pub fn syscall_number(name: &str) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        syscalls_x86_64::SYSCALLS
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| syscalls_x86_64::SYSCALLS[i].1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = name;
        None
    }
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Next,
    Label(usize),
}

#[derive(Clone, Copy, Debug)]
struct Insn {
    code: u16,
    jt: Target,
    jf: Target,
    k: u32,
}

/// A tiny assembler with forward labels.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn place(&mut self, label: usize) {
        self.labels[label] = Some(self.insns.len());
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push(Insn {
            code,
            jt: Target::Next,
            jf: Target::Next,
            k,
        });
    }
    fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.insns.push(Insn { code, jt, jf, k });
    }
    fn finish(self) -> Result<Vec<SockFilter>, SeccompError> {
        let resolve = |i: usize, t: Target| -> Result<u8, SeccompError> {
            match t {
                Target::Next => Ok(0),
                Target::Label(l) => {
                    let pos = self.labels[l].expect("label placed");
                    u8::try_from(pos - i - 1).map_err(|_| {
                        SeccompError::Unsupported(
                            "a rule is too long for a BPF conditional jump".into(),
                        )
                    })
                }
            }
        };
        let mut out = Vec::with_capacity(self.insns.len());
        for (i, insn) in self.insns.iter().enumerate() {
            out.push(SockFilter {
                code: insn.code,
                jt: resolve(i, insn.jt)?,
                jf: resolve(i, insn.jf)?,
                k: insn.k,
            });
        }
        if out.len() > 4096 {
            return Err(SeccompError::TooLarge(out.len()));
        }
        Ok(out)
    }
}

fn action_value(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    default_errno: u32,
) -> Result<u32, SeccompError> {
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => 0x7fff_0000,
        LinuxSeccompAction::ScmpActErrno => 0x0005_0000 | (errno.unwrap_or(default_errno) & 0xffff),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => 0,
        LinuxSeccompAction::ScmpActKillProcess => 0x8000_0000,
        LinuxSeccompAction::ScmpActTrap => 0x0003_0000,
        LinuxSeccompAction::ScmpActLog => 0x7ffc_0000,
        LinuxSeccompAction::ScmpActTrace => 0x7ff0_0000 | (errno.unwrap_or(default_errno) & 0xffff),
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Unsupported(
                "SCMP_ACT_NOTIFY (a seccomp listener) is not supported".into(),
            ))
        }
    })
}

/// Emits the check of one argument condition; falls through when it holds,
/// jumps to `fail` when not.
fn emit_arg(asm: &mut Asm, arg: &LinuxSeccompArg, fail: usize) -> Result<(), SeccompError> {
    if arg.index() > 5 {
        return Err(SeccompError::Unsupported(format!(
            "argument index {} (0-5 allowed)",
            arg.index()
        )));
    }
    let lo_off = OFF_ARGS + 8 * arg.index() as u32;
    let hi_off = lo_off + 4;
    let v = arg.value();
    let (vhi, vlo) = ((v >> 32) as u32, v as u32);
    let fail = Target::Label(fail);
    let ok = asm.label();
    let okt = Target::Label(ok);
    match arg.op() {
        LinuxSeccompOperator::ScmpCmpEq => {
            asm.stmt(BPF_LD_W_ABS, hi_off);
            asm.jump(BPF_JMP_JEQ_K, vhi, Target::Next, fail);
            asm.stmt(BPF_LD_W_ABS, lo_off);
            asm.jump(BPF_JMP_JEQ_K, vlo, Target::Next, fail);
        }
        LinuxSeccompOperator::ScmpCmpNe => {
            asm.stmt(BPF_LD_W_ABS, hi_off);
            asm.jump(BPF_JMP_JEQ_K, vhi, Target::Next, okt);
            asm.stmt(BPF_LD_W_ABS, lo_off);
            asm.jump(BPF_JMP_JEQ_K, vlo, fail, Target::Next);
        }
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            // libseccomp's convention: `value` is the mask, `valueTwo` the datum.
            let d = arg.value_two().unwrap_or(0);
            asm.stmt(BPF_LD_W_ABS, hi_off);
            asm.stmt(BPF_ALU_AND_K, vhi);
            asm.jump(BPF_JMP_JEQ_K, (d >> 32) as u32, Target::Next, fail);
            asm.stmt(BPF_LD_W_ABS, lo_off);
            asm.stmt(BPF_ALU_AND_K, vlo);
            asm.jump(BPF_JMP_JEQ_K, d as u32, Target::Next, fail);
        }
        LinuxSeccompOperator::ScmpCmpGt | LinuxSeccompOperator::ScmpCmpGe => {
            let lo_op = if arg.op() == LinuxSeccompOperator::ScmpCmpGt {
                BPF_JMP_JGT_K
            } else {
                BPF_JMP_JGE_K
            };
            asm.stmt(BPF_LD_W_ABS, hi_off);
            asm.jump(BPF_JMP_JGT_K, vhi, okt, Target::Next);
            asm.jump(BPF_JMP_JEQ_K, vhi, Target::Next, fail);
            asm.stmt(BPF_LD_W_ABS, lo_off);
            asm.jump(lo_op, vlo, Target::Next, fail);
        }
        LinuxSeccompOperator::ScmpCmpLt | LinuxSeccompOperator::ScmpCmpLe => {
            // a < v  ⇔  !(a >= v);  a <= v  ⇔  !(a > v).
            let lo_op = if arg.op() == LinuxSeccompOperator::ScmpCmpLt {
                BPF_JMP_JGE_K
            } else {
                BPF_JMP_JGT_K
            };
            asm.stmt(BPF_LD_W_ABS, hi_off);
            asm.jump(BPF_JMP_JGT_K, vhi, fail, Target::Next);
            asm.jump(BPF_JMP_JEQ_K, vhi, Target::Next, okt);
            asm.stmt(BPF_LD_W_ABS, lo_off);
            asm.jump(lo_op, vlo, fail, Target::Next);
        }
    }
    asm.place(ok);
    Ok(())
}

/// One rule for one system call number.
struct Rule<'a> {
    action: u32,
    args: &'a [LinuxSeccompArg],
}

/// Compiles a profile into a BPF program for the native architecture.
pub fn compile(profile: &LinuxSeccomp) -> Result<Vec<SockFilter>, SeccompError> {
    if cfg!(not(target_arch = "x86_64")) {
        return Err(SeccompError::Arch);
    }
    let default_errno = profile.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = action_value(profile.default_action(), None, default_errno)?;
    if profile.listener_path().is_some() {
        return Err(SeccompError::Unsupported(
            "listenerPath (seccomp notify) is not supported".into(),
        ));
    }

    // Rules per syscall number, in the order numbers first appear.
    let mut order: Vec<u32> = Vec::new();
    let mut rules: HashMap<u32, Vec<Rule<'_>>> = HashMap::new();
    for sc in profile.syscalls().iter().flatten() {
        let action = action_value(sc.action(), sc.errno_ret(), default_errno)?;
        for name in sc.names() {
            let Some(nr) = syscall_number(name) else {
                tracing::debug!(syscall = %name, "seccomp: not a system call on this architecture; rule skipped");
                continue;
            };
            let entry = rules.entry(nr).or_insert_with(|| {
                order.push(nr);
                Vec::new()
            });
            entry.push(Rule {
                action,
                args: sc.args().as_deref().unwrap_or(&[]),
            });
        }
    }

    let mut asm = Asm::default();
    // A foreign architecture or an x32 number: the default action, from a
    // local return (conditional jumps reach only 255 instructions).
    let native = asm.label();
    let x64 = asm.label();
    asm.stmt(BPF_LD_W_ABS, OFF_ARCH);
    asm.jump(
        BPF_JMP_JEQ_K,
        AUDIT_ARCH_X86_64,
        Target::Label(native),
        Target::Next,
    );
    asm.stmt(BPF_RET_K, default);
    asm.place(native);
    asm.stmt(BPF_LD_W_ABS, OFF_NR);
    asm.jump(
        BPF_JMP_JGE_K,
        X32_SYSCALL_BIT,
        Target::Next,
        Target::Label(x64),
    );
    asm.stmt(BPF_RET_K, default);
    asm.place(x64);

    // One block per system call number: `jeq nr` or skip to the next block.
    let mut a_is_nr = true;
    for nr in &order {
        let list = &rules[nr];
        let next = asm.label();
        if !a_is_nr {
            asm.stmt(BPF_LD_W_ABS, OFF_NR);
        }
        asm.jump(BPF_JMP_JEQ_K, *nr, Target::Next, Target::Label(next));
        a_is_nr = true;
        // Conditional rules in order, then the unconditional one (if any).
        let mut fallback = default;
        for rule in list {
            if rule.args.is_empty() {
                fallback = rule.action;
                continue;
            }
            let fail = asm.label();
            for arg in rule.args {
                emit_arg(&mut asm, arg, fail)?;
            }
            asm.stmt(BPF_RET_K, rule.action);
            asm.place(fail);
            a_is_nr = false;
        }
        asm.stmt(BPF_RET_K, fallback);
        asm.place(next);
    }
    asm.stmt(BPF_RET_K, default);
    asm.finish()
}

/// The kernel flags (`SECCOMP_FILTER_FLAG_*`) a profile asks for.
pub fn filter_flags(profile: &LinuxSeccomp) -> u64 {
    use oci_spec::runtime::LinuxSeccompFilterFlag as F;
    profile
        .flags()
        .iter()
        .flatten()
        .map(|f| match f {
            F::SeccompFilterFlagTsync => 1,
            F::SeccompFilterFlagLog => 2,
            F::SeccompFilterFlagSpecAllow => 4,
        })
        .fold(0, |a, b| a | b)
}

/// Compiles `profile`, or reads the program compiled for the same profile
/// from `cache_dir` (`<sha256 of the profile JSON>.bpf`, raw `sock_filter`s).
pub fn compile_cached(
    profile: &LinuxSeccomp,
    cache_dir: &Path,
) -> Result<Vec<SockFilter>, SeccompError> {
    let json = serde_json::to_vec(profile).expect("a LinuxSeccomp serializes");
    let key = hex::encode(Sha256::digest(&json));
    let path = cache_dir.join(format!("{key}.bpf"));
    if let Ok(bytes) = std::fs::read(&path) {
        if let Some(prog) = decode(&bytes) {
            return Ok(prog);
        }
    }
    let prog = compile(profile)?;
    let cache_err = |source| SeccompError::Cache {
        path: path.clone(),
        source,
    };
    fs_err::create_dir_all(cache_dir).map_err(cache_err)?;
    let tmp = cache_dir.join(format!(".{key}.{}", std::process::id()));
    fs_err::write(&tmp, encode(&prog)).map_err(cache_err)?;
    fs_err::rename(&tmp, &path).map_err(cache_err)?;
    Ok(prog)
}

/// Serializes a program as 8-byte little-endian `sock_filter`s.
pub fn encode(prog: &[SockFilter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for f in prog {
        out.extend_from_slice(&f.code.to_le_bytes());
        out.push(f.jt);
        out.push(f.jf);
        out.extend_from_slice(&f.k.to_le_bytes());
    }
    out
}

/// The inverse of [`encode`]; `None` when the bytes are not a program.
pub fn decode(bytes: &[u8]) -> Option<Vec<SockFilter>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| SockFilter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// Runs a program over one system call, as the kernel would (for tests and
/// for `features`-style self checks). `args` are the six arguments.
pub fn evaluate(prog: &[SockFilter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let word = |off: u32| -> u32 {
        match off {
            OFF_NR => nr,
            OFF_ARCH => arch,
            o if (OFF_ARGS..OFF_ARGS + 48).contains(&o) => {
                let i = ((o - OFF_ARGS) / 8) as usize;
                if (o - OFF_ARGS).is_multiple_of(8) {
                    args[i] as u32
                } else {
                    (args[i] >> 32) as u32
                }
            }
            _ => 0,
        }
    };
    let mut a = 0u32;
    let mut pc = 0usize;
    while pc < prog.len() {
        let f = prog[pc];
        pc += 1;
        match f.code {
            BPF_LD_W_ABS => a = word(f.k),
            BPF_ALU_AND_K => a &= f.k,
            BPF_RET_K => return f.k,
            BPF_JMP_JEQ_K | BPF_JMP_JGT_K | BPF_JMP_JGE_K => {
                let taken = match f.code {
                    BPF_JMP_JEQ_K => a == f.k,
                    BPF_JMP_JGT_K => a > f.k,
                    _ => a >= f.k,
                };
                pc += usize::from(if taken { f.jt } else { f.jf });
            }
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;
    const ENOSYS: u32 = 0x0005_0026;

    fn nr(name: &str) -> u32 {
        syscall_number(name).unwrap()
    }

    fn run(prog: &[SockFilter], name: &str, args: [u64; 6]) -> u32 {
        evaluate(prog, AUDIT_ARCH_X86_64, nr(name), args)
    }

    #[test]
    fn docker_default_denies_what_docker_denies() {
        let profile = docker_default(crate::caps::DOCKER_DEFAULT);
        let prog = compile(&profile).unwrap();
        assert_eq!(run(&prog, "read", [0; 6]), ALLOW);
        assert_eq!(run(&prog, "execve", [0; 6]), ALLOW);
        assert_eq!(run(&prog, "unshare", [0; 6]), EPERM);
        assert_eq!(run(&prog, "mount", [0; 6]), EPERM);
        assert_eq!(run(&prog, "keyctl", [0; 6]), EPERM);
        assert_eq!(run(&prog, "clone3", [0; 6]), ENOSYS);
        // clone without namespace flags is allowed, with CLONE_NEWUSER denied.
        assert_eq!(
            run(&prog, "clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            run(&prog, "clone", [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
            EPERM
        );
        // socket(AF_VSOCK) denied, AF_INET allowed.
        assert_eq!(run(&prog, "socket", [40, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(run(&prog, "socket", [2, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            run(&prog, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(run(&prog, "personality", [1, 0, 0, 0, 0, 0]), EPERM);
        // chroot needs CAP_SYS_CHROOT, which Docker grants.
        assert_eq!(run(&prog, "chroot", [0; 6]), ALLOW);
        assert_eq!(run(&prog, "ptrace", [0; 6]), ALLOW);
        // Other ABIs and x32 numbers get the default.
        assert_eq!(evaluate(&prog, 0x4000_0003, 3, [0; 6]), EPERM);
        assert_eq!(
            evaluate(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, [0; 6]),
            EPERM
        );
    }

    #[test]
    fn sys_admin_unlocks_mount_and_clone3() {
        let mut caps = crate::caps::DOCKER_DEFAULT.to_vec();
        caps.push("CAP_SYS_ADMIN");
        let prog = compile(&docker_default(&caps)).unwrap();
        assert_eq!(run(&prog, "mount", [0; 6]), ALLOW);
        assert_eq!(run(&prog, "clone3", [0; 6]), ALLOW);
        assert_eq!(
            run(&prog, "clone", [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
            ALLOW
        );
    }

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn sixty_four_bit_comparisons() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
                 "args": [{"index": 2, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_GT"}]},
                {"names": ["write"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_LE"}]},
                {"names": ["close"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 0, "value": 0xff, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        }));
        let prog = compile(&p).unwrap();
        assert_eq!(
            run(&prog, "read", [0, 0, 0x1_0000_0001, 0, 0, 0]),
            0x0005_0005
        );
        assert_eq!(run(&prog, "read", [0, 0, 0x1_0000_0000, 0, 0, 0]), ALLOW);
        assert_eq!(run(&prog, "read", [0, 0, 0xffff_ffff, 0, 0, 0]), ALLOW);
        assert_eq!(run(&prog, "write", [3, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(run(&prog, "write", [4, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(&prog, "write", [0x1_0000_0000, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(&prog, "close", [0x110, 0, 0, 0, 0, 0]), 0x8000_0000);
        assert_eq!(run(&prog, "close", [0x111, 0, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn notify_is_refused_clearly() {
        let p = profile(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
        let err = compile(&p).unwrap_err().to_string();
        assert!(err.contains("SCMP_ACT_NOTIFY"), "{err}");
    }

    #[test]
    fn cache_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = docker_default(crate::caps::DOCKER_DEFAULT);
        let a = compile_cached(&p, dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let b = compile_cached(&p, dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(decode(&encode(&a)).unwrap(), a);
    }
}

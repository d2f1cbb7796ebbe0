//! With the `cuda` feature, compiles src/cuda/*.cu to PTX with nvcc (the same nvcc that
//! candle-kernels uses: on PATH, or under CUDA_HOME / CUDA_PATH / CUDA_ROOT). Without it,
//! nothing happens: the default build needs no CUDA.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cuda/attention.cu");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("attention.ptx");
    let nvcc = ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"]
        .iter()
        .filter_map(|v| std::env::var_os(v))
        .map(|d| PathBuf::from(d).join("bin").join("nvcc"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    // PTX for the oldest target asked for; the driver compiles it for the card it runs on.
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let cap: String = cap.chars().filter(|c| c.is_ascii_digit()).collect();
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17", &format!("-arch=compute_{cap}"), "-o"])
        .arg(&out)
        .arg("src/cuda/attention.cu")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): the cuda feature needs nvcc (see scripts/build-cuda)", nvcc.display()));
    assert!(status.success(), "nvcc failed on src/cuda/attention.cu");
}

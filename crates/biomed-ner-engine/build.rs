//! With the `cuda` feature, compiles the kernels in src/cuda (listed in SOURCES) to PTX with
//! nvcc (the same nvcc that candle-kernels uses: on PATH, or under CUDA_HOME / CUDA_PATH /
//! CUDA_ROOT). Without it, nothing happens: the default build needs no CUDA.
use std::path::PathBuf;
use std::process::Command;

/// The kernels under src/cuda, each compiled to OUT_DIR/NAME.ptx.
const SOURCES: [&str; 2] = ["attention", "layer"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cuda/common.cuh");
    for name in SOURCES {
        println!("cargo:rerun-if-changed=src/cuda/{name}.cu");
    }
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let nvcc = ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"]
        .iter()
        .filter_map(|v| std::env::var_os(v))
        .map(|d| PathBuf::from(d).join("bin").join("nvcc"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    // PTX for the oldest target asked for; the driver compiles it for the card it runs on.
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let cap: String = cap.chars().filter(|c| c.is_ascii_digit()).collect();
    for name in SOURCES {
        let src = format!("src/cuda/{name}.cu");
        let status = Command::new(&nvcc)
            .args(["--ptx", "-O3", "-std=c++17", &format!("-arch=compute_{cap}"), "-o"])
            .arg(out_dir.join(format!("{name}.ptx")))
            .arg(&src)
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run {} ({e}): the cuda feature needs nvcc (see scripts/build-cuda)", nvcc.display())
            });
        assert!(status.success(), "nvcc failed on {src}");
    }
}

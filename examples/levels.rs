use std::time::Instant;
fn main() {
    let files: Vec<Vec<u8>> = std::env::args().skip(1).map(|p| std::fs::read(p).unwrap()).collect();
    let total: usize = files.iter().map(|f| f.len()).sum();
    for level in [1u32, 3, 4, 5, 6] {
        let t = Instant::now();
        let out: usize = files.iter().map(|f| crier::publish::gzip(f, level).len()).sum();
        println!("gzip {level}: {:.0} MB/s ratio {:.3}", total as f64 / t.elapsed().as_secs_f64() / 1e6, out as f64 / total as f64);
    }
    for q in [1u32, 2, 3, 4, 5] {
        let t = Instant::now();
        let out: usize = files.iter().map(|f| crier::publish::brotli(f, q).len()).sum();
        println!("brotli {q}: {:.0} MB/s ratio {:.3}", total as f64 / t.elapsed().as_secs_f64() / 1e6, out as f64 / total as f64);
    }
}

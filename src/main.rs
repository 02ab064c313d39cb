//! The `whatpro-hub` binary: a thin shell over the library's command line.

fn main() {
    std::process::exit(whatpro_hub::cli::main());
}

//! The step operator conformance suite against every operator: local processes, and Slurm
//! jobs on the single-node cluster `scripts/slurm-up.sh` starts.

mod process {
    weft_engine::step_operator_conformance_tests!(weft_engine::operator::ProcessOperator::default);
}

mod slurm {
    fn operator() -> weft_engine::operator::SlurmOperator {
        weft_engine::operator::SlurmOperator::new(weft_core::snapshot::SlurmJob {
            time_limit: Some(600),
            ..Default::default()
        })
    }

    weft_engine::step_operator_conformance_tests!(operator);
}

//! Checking the ZATCA chains from the log alone, for `revledger verify`: every document
//! sequence (a seller's Phase 1 chain, an EGS unit's Phase 2 chain) takes its ICVs 1, 2, 3, …
//! with no gap, each document's PIH is the hash its predecessor recorded (the first one's the
//! hash of "0"), a Phase 2 document's recorded hash is the hash of the UBL document rebuilt
//! from its allocation, and every stamped or cleared XML the outbox keeps hashes to the
//! document's recorded hash. It trusts no read model and no cached state: it folds what the
//! events say, one pass over the committed log.

use std::collections::HashMap;

use adapters::store::{Checkpoint, EventStore, RecordedEvent, StoreError, MAX_READ_BATCH};
use cqrs_es::Aggregate;
use domain::sequence::{DocumentSequence, SequenceEvent};
use domain::submission::SubmissionEvent;
use domain::zatca::FIRST_INVOICE_PIH;

/// What the check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Document sequences (chains) seen.
    pub chains: usize,
    /// Documents allocated in them.
    pub documents: usize,
    /// Phase 2 documents whose hash was recomputed from their UBL document.
    pub recomputed: usize,
    /// Stamped and cleared XMLs whose hash was checked.
    pub xml_checked: usize,
    /// The first thing that does not hold.
    pub first_break: Option<ChainBreak>,
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub stream_id: String,
    pub position: i64,
    pub reason: String,
}

#[derive(Default)]
struct Chain {
    sequence: DocumentSequence,
    last: Option<(u64, String)>,
}

/// Checks every chain in the committed log (see the module docs).
pub async fn verify_chains(store: &dyn EventStore) -> Result<ChainReport, StoreError> {
    let mut report = ChainReport::default();
    let mut chains: HashMap<String, Chain> = HashMap::new();
    let mut prepared: HashMap<String, String> = HashMap::new();
    let mut after = Checkpoint::START;
    loop {
        let batch = store.read_committed(after, MAX_READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Checkpoint {
            transaction_id: last.transaction_id,
            position: last.position,
        };
        for event in &batch {
            let outcome = match event.stream_type.as_str() {
                "document_sequence" => check_allocation(&mut chains, &mut report, event),
                "zatca_submission" => check_submission(&mut prepared, &mut report, event),
                _ => Ok(()),
            };
            if let Err(reason) = outcome {
                report.first_break = Some(ChainBreak {
                    stream_id: event.stream_id.clone(),
                    position: event.position,
                    reason,
                });
                report.chains = chains.len();
                return Ok(report);
            }
        }
    }
    report.chains = chains.len();
    Ok(report)
}

fn check_allocation(
    chains: &mut HashMap<String, Chain>,
    report: &mut ChainReport,
    event: &RecordedEvent,
) -> Result<(), String> {
    let decoded: SequenceEvent = event
        .decode()
        .map_err(|error| format!("undecodable {}: {error}", event.event_type))?;
    let chain = chains.entry(event.stream_id.clone()).or_default();
    // The sequence's only event: each one allocates a document.
    let SequenceEvent::DocumentAllocated {
        document_id,
        icv,
        previous_invoice_hash,
        document_hash,
        phase2,
        ..
    } = &decoded;
    let (expected_icv, expected_pih) = match &chain.last {
        None => (1, FIRST_INVOICE_PIH.to_owned()),
        Some((last_icv, last_hash)) => (last_icv + 1, last_hash.clone()),
    };
    if *icv != expected_icv {
        return Err(format!(
            "document {document_id} has ICV {icv}; the chain's next is {expected_icv}"
        ));
    }
    if *previous_invoice_hash != expected_pih {
        return Err(format!(
            "document {document_id}'s PIH {previous_invoice_hash} is not the previous document's hash {expected_pih}"
        ));
    }
    let (document_id, icv, document_hash, is_phase2) = (
        document_id.clone(),
        *icv,
        document_hash.clone(),
        phase2.is_some(),
    );
    chain.sequence.apply(decoded);
    if is_phase2 {
        let document = chain
            .sequence
            .phase2_document(&document_id)
            .ok_or_else(|| format!("Phase 2 document {document_id} cannot be rebuilt"))?;
        let recomputed = domain::phase2::document_hash(&document).map_err(|e| e.to_string())?;
        if recomputed != document_hash {
            return Err(format!(
                "document {document_id} records hash {document_hash}, its UBL document hashes to {recomputed}"
            ));
        }
        report.recomputed += 1;
    }
    chain.last = Some((icv, document_hash));
    report.documents += 1;
    Ok(())
}

fn check_submission(
    prepared: &mut HashMap<String, String>,
    report: &mut ChainReport,
    event: &RecordedEvent,
) -> Result<(), String> {
    let decoded: SubmissionEvent = event
        .decode()
        .map_err(|error| format!("undecodable {}: {error}", event.event_type))?;
    let (document_id, xml, what) = match decoded {
        SubmissionEvent::SubmissionPrepared {
            document_id,
            invoice_hash,
            ..
        } => {
            prepared.insert(document_id, invoice_hash);
            return Ok(());
        }
        SubmissionEvent::DocumentSigned {
            document_id,
            signed_xml,
            ..
        } => (document_id, signed_xml, "stamped"),
        SubmissionEvent::DocumentCleared {
            document_id,
            cleared_xml: Some(cleared_xml),
            ..
        } => (document_id, cleared_xml, "cleared"),
        _ => return Ok(()),
    };
    let expected = prepared
        .get(&document_id)
        .ok_or_else(|| format!("document {document_id} is {what} but was never prepared"))?;
    let hash = zatca::invoice_hash(&xml)
        .map_err(|error| format!("document {document_id}'s {what} XML cannot be hashed: {error}"))?
        .to_base64();
    if &hash != expected {
        return Err(format!(
            "document {document_id}'s {what} XML hashes to {hash}, not its recorded {expected}"
        ));
    }
    report.xml_checked += 1;
    Ok(())
}

use super::*;

async fn stored(db: &SqlDb, name: &str) -> (Checkpoint, i64) {
    load_checkpoint(db, name).await.unwrap()
}

#[tokio::test]
async fn checkpoints_move_together_only_from_where_they_stand() {
    let db = SqlDb::scratch().await.unwrap();
    let first = Checkpoint {
        transaction_id: 0,
        position: 10,
    };
    let mut tx = db.begin_derived().await.unwrap();
    let fresh = |name| Move {
        name,
        from: Checkpoint::START,
        events_applied: 10,
    };
    save_checkpoints(&mut tx, &[fresh("a"), fresh("b")], first)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stored(&db, "a").await, (first, 10));
    assert_eq!(stored(&db, "b").await, (first, 10));

    // `b` is not at the start any more: the whole move is refused, naming it.
    let second = Checkpoint {
        transaction_id: 0,
        position: 20,
    };
    let mut tx = db.begin_derived().await.unwrap();
    let moved_on = Move {
        name: "a",
        from: first,
        events_applied: 20,
    };
    let refused = save_checkpoints(&mut tx, &[moved_on, fresh("b")], second).await;
    assert!(
        matches!(refused, Err(ProjectionError::CheckpointMoved(ref names)) if names == "b"),
        "{refused:?}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(stored(&db, "a").await, (first, 10), "rolled back with b");
}

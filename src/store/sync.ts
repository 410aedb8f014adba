// Write options for the store's writes outside Store.commit (schema, data key, key source
// binding, restore): rare writes, so they always sync. DESIGN.md, "Store": every change is
// written with `sync: true` before it is acknowledged.
export const SYNCED = { sync: true } as const;

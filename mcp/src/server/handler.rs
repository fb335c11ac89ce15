//! The MCP protocol side: server info, resources (index status, ledger summary) and the
//! answer to a call for a tool that does not exist.

use super::*;

impl CairnMcp {
    fn index_status(&self) -> serde_json::Value {
        let status = self.ws.status();
        let stats = self.ws.index_stats();
        serde_json::json!({
            "repo": status.repo,
            "version": status.version,
            "index": status.index,
            "stats": stats.map(|s| serde_json::json!({
                "files": s.files,
                "symbols": s.symbols,
                "chunks": s.chunks,
                "sourceBytes": s.source_bytes,
                "languages": s.languages,
            })),
            "engine": match self.opts.engine {
                EngineShare::InProcess => serde_json::json!({"shared": false}),
                EngineShare::Daemon { pid } => serde_json::json!({"shared": true, "daemonPid": pid}),
            },
            "recordEdits": self.opts.record_edits,
            // The reference index that recorded edits are checked against.
            "references": status.references,
        })
    }

    fn tool_names(&self) -> String {
        self.tool_router
            .list_all()
            .iter()
            .map(|t| t.name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CairnMcp {
    fn get_info(&self) -> ServerConfig {
        let mut server = Implementation::new("cairn", env!("CARGO_PKG_VERSION"));
        server.title = Some("Cairn".into());
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(server)
        .with_instructions(INSTRUCTIONS)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if self.tool_router.get(&request.name).is_none() {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {:?}; Cairn's tools are: {}",
                    request.name.chars().take(100).collect::<String>(),
                    self.tool_names()
                ),
                None,
            ));
        }
        let tcc = ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(INDEX_STATUS_URI, "index-status")
                .with_title("Index status")
                .with_description("Where the repository's index stands: files, languages, state")
                .with_mime_type("application/json"),
            Resource::new(LEDGER_SUMMARY_URI, "ledger-summary")
                .with_title("Ledger summary")
                .with_description(
                    "Suggestions and decisions in the provenance ledger: counts per model and \
                     the latest events",
                )
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let value = match request.uri.as_str() {
            INDEX_STATUS_URI => self.index_status(),
            LEDGER_SUMMARY_URI => {
                let prov = self.prov.clone();
                let s = tokio::task::spawn_blocking(move || prov.ledger_summary(20))
                    .await
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                serde_json::to_value(s)
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
            }
            other => {
                return Err(ErrorData::resource_not_found(
                    format!(
                        "no resource {:?}; Cairn has {INDEX_STATUS_URI} and {LEDGER_SUMMARY_URI}",
                        other.chars().take(200).collect::<String>()
                    ),
                    None,
                ))
            }
        };
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(
            ReadResourceResult::new(vec![ResourceContents::TextResourceContents {
                uri: request.uri,
                mime_type: Some("application/json".into()),
                text,
                meta: None,
            }])
            .into(),
        )
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if request.method == TOO_LARGE_METHOD {
            let p = request.params.unwrap_or_default();
            let bytes = p["bytes"].as_u64().unwrap_or(0);
            let limit = p["limit"].as_u64().unwrap_or(0);
            let method = p["method"].as_str().unwrap_or("the request");
            return Err(ErrorData::new(
                ErrorCode::INVALID_REQUEST,
                format!(
                    "{method} was {bytes} bytes; Cairn takes messages of at most {limit} bytes. \
                     Send paths and line ranges rather than whole files"
                ),
                Some(serde_json::json!({"bytes": bytes, "limit": limit})),
            ));
        }
        Err(ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!(
                "Cairn does not serve {:?}",
                request.method.chars().take(100).collect::<String>()
            ),
            None,
        ))
    }
}
